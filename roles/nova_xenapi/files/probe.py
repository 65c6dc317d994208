# Run by the nova_xenapi role with nova's Python (2.7 or 3) as ``python -c <this> <json>``; not a module.
# Reads in one go what the role decides on and prints it as one JSON object:
#   nova       nova's version, or "" when nova's Python has no nova;
#   xenapi     whether "import XenAPI" works;
#   interfaces {name: {mac, ipv4}} of the interfaces asked for ({} for a missing one);
#   files      {path: {exists, mode, owner, group, options: {section: {option: [values]}}}} of the files asked for,
#              parsed the way community.general.ini_file reads them (comments and blank lines skipped).
# The values include the XenServer password: the role reads this output with no_log.
import grp
import json
import os
import pwd
import re
import subprocess
import sys

SECTION = re.compile(r"^\s*\[\s*(.+?)\s*\]\s*$")
OPTION = re.compile(r"^\s*([^#;=\s][^=]*?)\s*=\s*(.*?)\s*$")


def nova_version():
    try:
        try:
            from importlib.metadata import version  # novermin
        except ImportError:
            from pkg_resources import get_distribution

            def version(name):
                return get_distribution(name).version

        return version("nova")
    except Exception:
        return ""


def xenapi_imports():
    try:
        import XenAPI  # noqa: F401
    except ImportError:
        return False
    return True


def interface(name):
    try:
        with open("/sys/class/net/%s/address" % name) as handle:
            mac = handle.read().strip().lower()
    except (IOError, OSError):  # IOError is not OSError on Python 2.7
        return {}
    try:
        out = subprocess.check_output(["ip", "-4", "-o", "addr", "show", "dev", name]).decode()
    except (OSError, subprocess.CalledProcessError):
        out = ""
    ipv4 = [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]
    return {"mac": mac, "ipv4": ipv4[0] if ipv4 else ""}


def ini_file(path):
    try:
        info = os.stat(path)
        with open(path) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):  # IOError is not OSError on Python 2.7
        return {"exists": False}
    options, section = {}, None
    for line in lines:
        header = SECTION.match(line)
        if header:
            section = header.group(1)
            options.setdefault(section, {})
            continue
        option = OPTION.match(line)
        if option and section is not None:
            options[section].setdefault(option.group(1), []).append(option.group(2))
    return {
        "exists": True,
        "mode": "%04o" % (info.st_mode & 0o7777),
        "owner": pwd.getpwuid(info.st_uid).pw_name,
        "group": grp.getgrgid(info.st_gid).gr_name,
        "options": options,
    }


def main():
    wanted = json.loads(sys.argv[1])
    print(
        json.dumps(
            {
                "nova": nova_version(),
                "xenapi": xenapi_imports(),
                "interfaces": dict((name, interface(name)) for name in wanted["interfaces"]),
                "files": dict((path, ini_file(path)) for path in wanted["files"]),
            }
        )
    )


main()
