"""Every key the nova_xenapi role writes is an option of the release it writes it for, with a value of its type.

The keys are what the role's tasks (roles/nova_xenapi/tasks/configure.yml) pass to ini_settings, rendered with
Ansible's templating from its defaults and vars, so a key or value that changes in the role is checked here as
written.

The releases are real ones, taken from PyPI at test time with pip (their wheels: an sdist would make pip run
its setup.py for the metadata) into .build/nova-options (never committed):

- nova 21.2.4 (Ussuri, the last release with the XenAPI driver), with neutron 16.4.2 and ceilometer 14.1.0 of the
  same series; nova 17.0.13 (Queens) and 16.1.8 (Pike) for the keys that were renamed or removed on the way;
- oslo.config 8.0.2 (Ussuri's) and oslo.utils, installed into .build/nova-options/site, used in a subprocess.

How each project's options are loaded:

- nova: the modules of nova/conf that define the keys (compute, configdrive, xenserver, vnc and what they import)
  are imported for real and register their options with oslo.config. Only nova/conf/__init__.py is skipped: it
  imports every option module of nova, which needs most of nova's requirements (keystoneauth1, oslo.db, castellan
  and more) for options this role does not touch.
- neutron and ceilometer: their option modules import their whole projects (neutron_lib, oslo.privsep, oslo.log,
  os_xenapi), so the option lists are read from the source with Python's ast instead: each ``cfg.XxxOpt('name',
  ...)`` is rebuilt as the same oslo.config class with its literal type arguments (choices, min, max, version)
  and registered in the group its project registers it in.

Then the role's keys are written into an INI file that oslo.config parses: each key must be an option's own name
(not a deprecated alias) in its section, and reading it must not raise. Keys the role removes must not be options
of that release. Values that name code (the driver, the VIF driver, the inspector, the root helper token) must name
code that the release ships.
"""

import ast
import configparser
import glob
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from ansible_collections.xenserver.openstack.plugins.modules import ini_settings

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
ROLE = os.path.join(ROOT, "roles", "nova_xenapi")
CACHE = os.path.join(ROOT, ".build", "nova-options")
SITE = os.path.join(CACHE, "site")
SITE_REQUIREMENTS = ["oslo.config==8.0.2", "oslo.utils==10.2.0"]

NOVA = {"21": "21.2.4", "17": "17.0.13", "16": "16.1.8"}
NEUTRON = "16.4.2"
CEILOMETER = "14.1.0"

# The nova/conf modules that define the keys the role writes (their own imports come along).
NOVA_MODULES = ("compute", "configdrive", "xenserver", "vnc")
# (source file, option list, group it is registered in): neutron registers them in
# neutron/conf/agent/common.py register_root_helper, ovs_conf.py register_ovs_agent_opts and
# xenapi_conf.py register_xenapi_opts; ceilometer lists them in ceilometer/opts.py list_opts.
NEUTRON_OPTIONS = (
    ("neutron/conf/agent/common.py", "ROOT_HELPER_OPTS", "AGENT"),
    ("neutron/conf/plugins/ml2/drivers/ovs_conf.py", "ovs_opts", "OVS"),
    ("neutron/conf/plugins/ml2/drivers/ovs_conf.py", "agent_opts", "AGENT"),
    ("neutron/conf/agent/xenapi_conf.py", "XENAPI_OPTS", "xenapi"),
    ("neutron/conf/agent/ovsdb_api.py", "API_OPTS", "OVS"),
    ("neutron/conf/agent/securitygroups_rpc.py", "security_group_opts", "SECURITYGROUP"),
)
CEILOMETER_OPTIONS = (
    ("ceilometer/compute/virt/inspector.py", "OPTS", "DEFAULT"),
    ("ceilometer/compute/discovery.py", "OPTS", "compute"),
    ("ceilometer/compute/virt/xenapi/inspector.py", "OPTS", "xenapi"),
)
ROOTWRAP_CONF = "neutron-%s.data/data/etc/neutron/rootwrap.conf" % NEUTRON
ENTRY_POINTS = "ceilometer-%s.dist-info/entry_points.txt" % CEILOMETER
# The files of each wheel these checks read.
MEMBERS = {
    "nova": ("nova/conf/", "nova/virt/xenapi/driver.py", "nova/virt/xenapi/vif.py"),
    "neutron": (
        *(path for path, _, _ in NEUTRON_OPTIONS),
        "neutron/agent/linux/xenapi_root_helper.py",
        ROOTWRAP_CONF,
    ),
    "ceilometer": (*(path for path, _, _ in CEILOMETER_OPTIONS), ENTRY_POINTS),
}


# --- the releases, from PyPI --------------------------------------------------------------------------------------


def _pip(*args):
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _fetch(project, version):
    """Download the wheel of ``project`` ``version`` and extract the files the checks read; return its directory."""
    target = os.path.join(CACHE, "%s-%s" % (project, version))
    done = os.path.join(target, ".complete")
    if os.path.exists(done):
        return target
    downloads = os.path.join(CACHE, "wheels")
    wheels = glob.glob(os.path.join(downloads, "%s-%s-*.whl" % (project, version)))
    if not wheels:
        result = _pip("download", "--no-deps", "--only-binary", ":all:", "-d", downloads, "%s==%s" % (project, version))
        wheels = glob.glob(os.path.join(downloads, "%s-%s-*.whl" % (project, version)))
        if result.returncode or not wheels:
            return "pip download %s==%s failed: %s" % (project, version, result.stderr.strip()[-500:])
    with zipfile.ZipFile(wheels[0]) as archive:
        archive.extractall(target, [name for name in archive.namelist() if name.startswith(MEMBERS[project])])
    open(done, "w").close()
    return target


def _site():
    marker = os.path.join(SITE, ".complete-" + "-".join(SITE_REQUIREMENTS))
    if not os.path.exists(marker):
        result = _pip("install", "--target", SITE, "--upgrade", *SITE_REQUIREMENTS)
        if result.returncode:
            return "pip install %s failed: %s" % (" ".join(SITE_REQUIREMENTS), result.stderr.strip()[-500:])
        open(marker, "w").close()
    return SITE


@pytest.fixture(scope="session")
def releases():
    """{name: directory} of every release the checks read, plus the oslo.config site; fetched in parallel once."""
    os.makedirs(CACHE, exist_ok=True)
    jobs = {"site": _site}
    jobs.update({"nova-%s" % major: (lambda v=version: _fetch("nova", v)) for major, version in NOVA.items()})
    jobs["neutron"] = lambda: _fetch("neutron", NEUTRON)
    jobs["ceilometer"] = lambda: _fetch("ceilometer", CEILOMETER)
    with ThreadPoolExecutor(len(jobs)) as pool:
        found = dict(zip(jobs, pool.map(lambda job: job(), jobs.values())))
    problems = [value for value in found.values() if not os.path.isdir(value)]
    if problems:
        # CI reaches PyPI; a developer offline is told why instead of failing.
        (pytest.fail if os.environ.get("CI") else pytest.skip)("; ".join(problems))
    return found


# --- the role's keys ----------------------------------------------------------------------------------------------


def _trusted(data):
    from ansible.template import trust_as_template

    if isinstance(data, str):
        return trust_as_template(data)
    if isinstance(data, dict):
        return {key: _trusted(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_trusted(value) for value in data]
    return data


# The files the role's configure tasks edit, by the variable that names each.
FILES = {
    "nova_xenapi_nova_config": "nova",
    "nova_xenapi_neutron_agent_config": "agent",
    "nova_xenapi_neutron_rootwrap_config": "rootwrap",
    "nova_xenapi_ceilometer_config": "ceilometer",
}


def role_keys(nova_major, **settings):
    """{file: [(section, option, state, value)]}: what the role's tasks pass to ini_settings for a nova release.

    Each task of tasks/configure.yml is rendered by Ansible from the role's defaults and vars, with the facts the
    role's preflight would find; the values are turned into the text ini_settings writes.
    """
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    loader = DataLoader()
    defaults = _trusted(loader.load_from_file(os.path.join(ROLE, "defaults", "main.yml")))
    tables = _trusted(loader.load_from_file(os.path.join(ROLE, "vars", "main.yml")))
    tasks = _trusted(loader.load_from_file(os.path.join(ROLE, "tasks", "configure.yml")))
    variables = dict(defaults, **tables)
    variables.update(
        xenserver_password="not-a-real-password",
        nova_xenapi_public_vip="192.0.2.5",
        __nova_xenapi_nova_major=nova_major,
        __nova_xenapi_rootwrap=False,
        __nova_xenapi_proxyclient_address="198.18.1.11",
        __nova_xenapi_physnet_bridge="xenbr1",
        __nova_xenapi_of_listen_address="169.254.0.2",
    )
    variables.update(settings)
    templar = Templar(loader=loader, variables=variables)
    rendered = {}
    for task in tasks:
        args = task["xenserver.openstack.ini_settings"]
        keys = rendered.setdefault(FILES[re.search(r"\{\{ (\w+) \}\}", args["path"]).group(1)], [])
        for field in ("settings", "secrets"):
            for key in templar.template(args.get(field, [])):
                value = ini_settings.value_text(key.get("value"))
                keys.append((key["section"], key["option"], key.get("state", "present"), value))
    return rendered


def test_every_file_the_role_edits_is_found_and_the_driver_comes_last():
    keys = role_keys(21, __nova_xenapi_rootwrap=True)
    assert set(keys) == set(FILES.values())
    assert keys["nova"][-1] == ("DEFAULT", "compute_driver", "present", "xenapi.XenAPIDriver")
    assert ("xenserver", "connection_password", "present", "not-a-real-password") in keys["nova"]
    assert ("xenapi", "xenapi_connection_password", "present", "not-a-real-password") in keys["rootwrap"]


# --- the option check, run with oslo.config in a subprocess -------------------------------------------------------

CHECKER = textwrap.dedent(
    r'''
    import ast, importlib, json, os, sys, tempfile, types
    from oslo_config import cfg

    TYPE_ARGS = ("choices", "min", "max", "version", "regex", "ignore_case", "schemes")
    job = json.load(sys.stdin)
    conf = cfg.ConfigOpts()

    def literal_opts(path, name):
        """The options of list ``name`` in ``path``, rebuilt from the source."""
        tree = ast.parse(open(path).read(), path)
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                break
        else:
            raise SystemExit("%s has no list %s" % (path, name))
        opts = []
        for call in node.value.elts:
            kind = call.func.attr
            kwargs = {}
            for keyword in call.keywords:
                if keyword.arg in TYPE_ARGS:
                    try:
                        kwargs[keyword.arg] = ast.literal_eval(keyword.value)
                    except ValueError:
                        pass
            opts.append(getattr(cfg, kind)(ast.literal_eval(call.args[0]), **kwargs))
        return opts

    if job["mode"] == "import":
        for package, path in (("nova", "nova"), ("nova.conf", "nova/conf")):
            module = types.ModuleType(package)
            module.__path__ = [os.path.join(job["source"], path)]
            sys.modules[package] = module
        for name in job["modules"]:
            importlib.import_module("nova.conf." + name).register_opts(conf)
    elif job["mode"] == "installed":
        # The project's own option lists (what oslo-config-generator lists), from the project installed here.
        for module, function in job["lists"]:
            for group, opts in getattr(importlib.import_module(module), function)():
                conf.register_opts(list(opts), group=None if group == "DEFAULT" else group)
    else:
        for path, name, group in job["lists"]:
            opts = literal_opts(os.path.join(job["source"], path), name)
            conf.register_opts(opts, group=None if group == "DEFAULT" else group)

    def group_of(section):
        """The registered group a config file section names (oslo.config matches AGENT and [agent] alike)."""
        if section == "DEFAULT":
            return None
        return next((g for g in conf._groups if g.lower() == section.lower()), section)

    def option(section, name):
        """The option whose own name is ``name`` in ``section``; None also when ``name`` is a deprecated alias."""
        try:
            opt = conf._get_opt_info(name, group_of(section))["opt"]
        except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
            return None
        return opt if opt.dest == name else None

    lines, problems = [], []
    for section, name, state, value in job["keys"]:
        opt = option(section, name)
        if state == "absent":
            if opt is not None:
                problems.append("[%s] %s is removed by the role but is an option of this release" % (section, name))
            continue
        if opt is None:
            problems.append("[%s] %s is not an option (nor the current name of one) here" % (section, name))
            continue
        lines.append((section, name, value))
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as ini:
        for section in dict.fromkeys(s for s, _, _ in lines):
            ini.write("[%s]\n" % section)
            ini.writelines("%s = %s\n" % (n, v) for s, n, v in lines if s == section)
    conf(args=[], default_config_files=[ini.name])
    for section, name, value in lines:
        group = group_of(section)
        try:
            parsed = getattr(conf if group is None else conf[group], name)
        except Exception as error:
            problems.append("[%s] %s = %r: %s" % (section, name, value, error))
        else:
            if parsed is None and value != "":
                problems.append("[%s] %s = %r was not read" % (section, name, value))
    os.unlink(ini.name)
    print(json.dumps(problems))
    '''
)


def check(source, keys, python=None, **job):
    """The problems of ``keys`` (oslo.config in a subprocess): by default this Python with the oslo.config of the
    cache; with ``python``, that interpreter (a real-client venv) and its own oslo.config and projects."""
    job.update(source=source, keys=keys)
    result = subprocess.run(
        [python or sys.executable, "-c", CHECKER],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH="" if python else SITE),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("major", sorted(NOVA))
def test_nova_keys_are_options_of_that_release(releases, major):
    keys = role_keys(int(major))["nova"]
    assert check(releases["nova-" + major], keys, mode="import", modules=NOVA_MODULES) == []


def test_nova_keys_of_ussuri_are_the_current_names(releases):
    keys = {(section, option): state for section, option, state, _ in role_keys(21)["nova"]}
    assert keys[("xenserver", "vif_driver")] == "absent"
    assert keys[("vnc", "vncserver_proxyclient_address")] == "absent"
    assert keys[("vnc", "server_proxyclient_address")] == "present"


@pytest.mark.parametrize("major", sorted(NOVA))
def test_nova_values_that_name_code_name_code_of_that_release(releases, major):
    source = releases["nova-" + major]
    with open(os.path.join(source, "nova", "virt", "xenapi", "driver.py")) as handle:
        assert re.search(r"^class XenAPIDriver\(", handle.read(), re.M)
    for _section, option, state, value in role_keys(int(major))["nova"]:
        if option == "vif_driver" and state == "present":
            module, _, name = value.rpartition(".")
            assert module == "nova.virt.xenapi.vif"
            with open(os.path.join(source, "nova", "virt", "xenapi", "vif.py")) as handle:
                assert re.search(r"^class %s\(" % name, handle.read(), re.M)


NEUTRON_SETTINGS = {
    "vlan-rootwrap": dict(nova_xenapi_neutron_network_type="vlan", __nova_xenapi_rootwrap=True),
    "vlan-daemon": dict(nova_xenapi_neutron_network_type="vlan", __nova_xenapi_rootwrap=False),
}


@pytest.mark.parametrize("settings", sorted(NEUTRON_SETTINGS))
def test_neutron_agent_keys_are_options_of_neutron_ussuri(releases, settings):
    keys = role_keys(21, **NEUTRON_SETTINGS[settings])
    agent = keys["agent"]
    assert agent, "no agent keys for %s" % settings
    assert check(releases["neutron"], agent, mode="ast", lists=NEUTRON_OPTIONS) == []


def test_neutron_root_helper_daemon_is_neutrons_xenapi_token(releases):
    with open(os.path.join(releases["neutron"], "neutron", "agent", "linux", "xenapi_root_helper.py")) as handle:
        token = re.search(r"^ROOT_HELPER_DAEMON_TOKEN = '([^']+)'", handle.read(), re.M).group(1)
    keys = role_keys(21, __nova_xenapi_rootwrap=False)["agent"]
    assert ("agent", "root_helper_daemon", "present", token) in keys


def test_rootwrap_keys_are_those_of_neutrons_rootwrap_conf(releases):
    """neutron-rootwrap-xen-dom0 reads rootwrap.conf with ConfigParser; the file neutron ships lists its keys."""
    shipped = configparser.ConfigParser(interpolation=None)
    shipped.read(os.path.join(releases["neutron"], ROOTWRAP_CONF))
    keys = role_keys(20, __nova_xenapi_rootwrap=True)
    for section, option, state, _ in keys["rootwrap"]:
        assert state == "present"
        assert shipped.has_option(section, option), "[%s] %s" % (section, option)


def test_ceilometer_keys_are_options_of_ceilometer_ussuri(releases):
    keys = role_keys(21)
    ceilometer = keys["ceilometer"]
    assert check(releases["ceilometer"], ceilometer, mode="ast", lists=CEILOMETER_OPTIONS) == []
    inspector = next(value for _, option, _, value in ceilometer if option == "hypervisor_inspector")
    entry_points = configparser.ConfigParser(interpolation=None)
    entry_points.read(os.path.join(releases["ceilometer"], ENTRY_POINTS))
    assert entry_points.has_option("ceilometer.compute.virt", inspector)


def test_the_checker_finds_a_wrong_key_and_a_wrong_value(releases):
    """The check itself: a misspelt key, a key in the wrong section and a value of the wrong type are reported."""
    problems = check(
        releases["nova-21"],
        [
            ("xenserver", "conection_url", "present", "http://169.254.0.1"),
            ("DEFAULT", "cache_images", "present", "all"),
            ("xenserver", "cache_images", "present", "sometimes"),
            ("DEFAULT", "force_config_drive", "present", "maybe"),
            ("xenserver", "connection_url", "absent", ""),
        ],
        mode="import",
        modules=NOVA_MODULES,
    )
    assert len(problems) == 5, problems
    problems = check(
        releases["neutron"], [("ovs", "local_ip", "present", "not-an-address")], mode="ast", lists=NEUTRON_OPTIONS
    )
    assert len(problems) == 1, problems


def test_ast_rebuilt_options_match_what_oslo_config_would_register(releases):
    """The ast reading sees every option of each list (a guard against lists built in ways it does not follow)."""
    for source, lists in ((releases["neutron"], NEUTRON_OPTIONS), (releases["ceilometer"], CEILOMETER_OPTIONS)):
        for path, name, _group in lists:
            with open(os.path.join(source, path)) as handle:
                text = handle.read()
            tree = ast.parse(text)
            node = next(
                n
                for n in tree.body
                if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == name for t in n.targets)
            )
            assert isinstance(node.value, ast.List), "%s %s is not a literal list" % (path, name)
            assert all(
                isinstance(e, ast.Call) and getattr(e.func, "attr", "").endswith("Opt") for e in node.value.elts
            ), "%s %s has entries other than cfg.*Opt(...)" % (path, name)


# --- the controllers' [DEFAULT] memcached_servers (misc_patches) ----------------------------------------------------

# Ocata's nova (15) is the oldest release with a wheel on PyPI; Liberty (12) and Mitaka (13) defined the option in
# nova/openstack/common/memorycache.py and nova/cache_utils.py, and Newton (14) removed it (nova's git history).
OCATA = "15.1.5"


def _wheel(version):
    """The path of nova's wheel of ``version`` (downloaded once into the cache)."""
    downloads = os.path.join(CACHE, "wheels")
    found = glob.glob(os.path.join(downloads, "nova-%s-*.whl" % version))
    if not found:
        result = _pip("download", "--no-deps", "--only-binary", ":all:", "-d", downloads, "nova==%s" % version)
        found = glob.glob(os.path.join(downloads, "nova-%s-*.whl" % version))
        if result.returncode or not found:
            (pytest.fail if os.environ.get("CI") else pytest.skip)("pip download nova==%s failed" % version)
    return found[0]


def test_default_memcached_servers_is_written_only_for_the_releases_that_have_the_option(releases):
    with open(os.path.join(ROOT, "roles", "misc_patches", "vars", "main.yml")) as handle:
        tables = yaml.safe_load(handle)
    written = tables["_misc_patches_default_memcached_releases"]
    names = tables["_misc_patches_nova_releases"]
    assert sorted(int(major) for major, name in names.items() if name in written) == [12, 13]
    option = re.compile(r"""Opt\(\s*['"]memcached_servers['"]""")
    for version in (OCATA, *NOVA.values()):
        with zipfile.ZipFile(_wheel(version)) as archive:
            defining = [
                name
                for name in archive.namelist()
                if name.startswith("nova/") and name.endswith(".py") and option.search(archive.read(name).decode())
            ]
        assert defining == [], "nova %s defines memcached_servers in %s" % (version, defining)
        assert names[version.split(".")[0]] not in written
    # The check finds the option where it is: oslo.cache's own [cache] memcache_servers does not count, nova 13 did.
    assert option.search("memcache_opts = [\n    _DeprecatedListOpt('memcached_servers',")
