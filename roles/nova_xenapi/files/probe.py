# Run by the nova_xenapi role with nova's Python (2.7 or 3) as ``python -c <this> <json list of interfaces> <Dom0>``;
# not a module. Reads in one go what only nova's Python and the VM can tell, and prints it as one JSON object:
#   nova       nova's version, or "" when nova's Python has no nova;
#   xenapi     whether "import XenAPI" works;
#   interfaces {name: {mac, ipv4}} of the interfaces asked for ({} for a missing one);
#   dom0_source the local address the VM reaches Dom0 from (its HIMN address), "" when it has no route to Dom0.
# The configuration files are read (and written) by the xenserver.openstack.ini_settings module.
import json
import socket
import subprocess
import sys


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
    """Whether nova's XenAPI client imports: PyPI's XenAPI (nova 13, 14) or os-xenapi's own copy (nova 15-21)."""
    try:
        import XenAPI
    except ImportError:
        try:
            from os_xenapi.client import XenAPI  # noqa: F401
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


def source_address(host):
    """The address the kernel picks to reach ``host`` (a UDP socket's connect sends nothing)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((host, 80))
        return probe.getsockname()[0]
    except (socket.error, OSError):  # no route, or a name that does not resolve
        return ""
    finally:
        probe.close()


def main():
    interfaces = json.loads(sys.argv[1])
    print(
        json.dumps(
            {
                "nova": nova_version(),
                "xenapi": xenapi_imports(),
                "interfaces": dict((name, interface(name)) for name in interfaces),
                "dom0_source": source_address(sys.argv[2]),
            }
        )
    )


main()
