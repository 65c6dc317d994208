"""ini_settings: a file's settings in one task - edits in place, once, atomically, check and diff, secrets masked.

Files are read back with Python's configparser (how neutron's rootwrap reads rootwrap.conf), and the edited
text is compared line by line, so a setting that lands in the wrong section or eats a comment fails here.
"""

import configparser
import json
import os
import stat

import pytest
from ansible_collections.xenserver.openstack.plugins.modules import ini_settings

SECRET = "s3cret-Pass"
OLD_SECRET = "old-Pass-0"

NOVA_SAMPLE = (
    """\
[DEFAULT]

#
# From nova.conf
#

# Force injection to take place on a config drive (boolean value)
#force_config_drive = <None>
compute_driver = libvirt.LibvirtDriver

[xenserver]
# URL for connection to XenServer/Xen Cloud Platform (string value)
#connection_url = <None>
connection_username=root
connection_password = %s
vif_driver = nova.virt.xenapi.vif.XenAPIBridgeDriver
    nova.virt.xenapi.vif.Other

[vnc]
enabled = true
"""
    % OLD_SECRET
)


def settings_of(path):
    parser = configparser.ConfigParser(interpolation=None, default_section="no default")
    parser.optionxform = str
    parser.read(path)
    return {section: dict(parser[section]) for section in parser.sections()}


def run(run_module, path, check_mode=False, **args):
    return run_module(ini_settings, dict(args, path=str(path)), check_mode=check_mode)


@pytest.fixture
def nova_conf(tmp_path):
    path = tmp_path / "nova-compute.conf"
    path.write_text(NOVA_SAMPLE)
    return path


NOVA_SETTINGS = [
    {"section": "DEFAULT", "option": "force_config_drive", "value": True},
    {"section": "xenserver", "option": "connection_url", "value": "http://169.254.0.1"},
    {"section": "xenserver", "option": "connection_username", "value": "root"},
    {"section": "xenserver", "option": "vif_driver", "state": "absent"},
    {"section": "vnc", "option": "server_proxyclient_address", "value": "198.18.1.11"},
    {"section": "cache", "option": "enabled", "value": "True"},
]
NOVA_SECRETS = [{"section": "xenserver", "option": "connection_password", "value": SECRET}]


def test_settings_land_in_place_and_everything_else_stays(run_module, nova_conf):
    result = run(run_module, nova_conf, settings=NOVA_SETTINGS, secrets=NOVA_SECRETS)
    assert result["changed"] is True
    assert result["changes"] == [
        {"section": "DEFAULT", "option": "force_config_drive", "action": "added"},
        {"section": "xenserver", "option": "connection_url", "action": "added"},
        {"section": "xenserver", "option": "vif_driver", "action": "removed"},
        {"section": "vnc", "option": "server_proxyclient_address", "action": "added"},
        {"section": "cache", "option": "enabled", "action": "added"},
        {"section": "xenserver", "option": "connection_password", "action": "updated"},
    ]
    # New options follow their commented-out samples; the rest of the file is as it was, line for line.
    assert nova_conf.read_text() == (
        NOVA_SAMPLE.replace(
            "#force_config_drive = <None>\n", "#force_config_drive = <None>\nforce_config_drive = True\n"
        )
        .replace("#connection_url = <None>\n", "#connection_url = <None>\nconnection_url = http://169.254.0.1\n")
        .replace("vif_driver = nova.virt.xenapi.vif.XenAPIBridgeDriver\n    nova.virt.xenapi.vif.Other\n", "")
        .replace(OLD_SECRET, SECRET)
        .replace("enabled = true\n", "enabled = true\nserver_proxyclient_address = 198.18.1.11\n")
        + "\n[cache]\nenabled = True\n"
    )
    assert settings_of(nova_conf)["xenserver"] == {
        "connection_url": "http://169.254.0.1",
        "connection_username": "root",
        "connection_password": SECRET,
    }


def test_second_run_changes_nothing_and_keeps_the_files_spacing(run_module, nova_conf):
    run(run_module, nova_conf, settings=NOVA_SETTINGS, secrets=NOVA_SECRETS)
    written = nova_conf.read_text()
    again = run(run_module, nova_conf, settings=NOVA_SETTINGS, secrets=NOVA_SECRETS)
    assert again["changed"] is False and again["changes"] == []
    assert nova_conf.read_text() == written
    assert "connection_username=root\n" in written  # in place: not rewritten to another spacing


def test_check_mode_reports_the_changes_and_writes_nothing(run_module, nova_conf, tmp_path):
    before = os.stat(nova_conf)
    result = run(run_module, nova_conf, check_mode=True, settings=NOVA_SETTINGS, secrets=NOVA_SECRETS)
    assert result["changed"] is True and len(result["changes"]) == 6
    assert nova_conf.read_text() == NOVA_SAMPLE and os.stat(nova_conf).st_mtime_ns == before.st_mtime_ns
    missing = tmp_path / "new.conf"
    result = run(run_module, missing, check_mode=True, settings=NOVA_SETTINGS[:1], mode="0640")
    assert result["changed"] is True and not missing.exists()
    assert sorted(os.listdir(tmp_path)) == ["nova-compute.conf"]


def test_the_diff_shows_the_managed_options_with_secrets_masked_and_nothing_else(run_module, nova_conf):
    nova_conf.write_text(NOVA_SAMPLE + "[database]\nconnection = mysql+pymysql://nova:db-Pass-9@192.0.2.2/nova\n")
    result = run_module(
        ini_settings,
        dict(path=str(nova_conf), settings=NOVA_SETTINGS, secrets=NOVA_SECRETS, _ansible_diff=True),
        check_mode=True,
    )
    (diff,) = result["diff"]
    assert diff["before_header"] == diff["after_header"] == str(nova_conf)
    assert diff["before"] == (
        "[xenserver]\n"
        "connection_username=root\n"
        "connection_password = ********\n"
        "vif_driver = nova.virt.xenapi.vif.XenAPIBridgeDriver\n"
        "    nova.virt.xenapi.vif.Other\n"
    )
    assert diff["after"] == (
        "[DEFAULT]\n"
        "force_config_drive = True\n"
        "[xenserver]\n"
        "connection_url = http://169.254.0.1\n"
        "connection_username=root\n"
        "connection_password = ******** (new value)\n"
        "[vnc]\n"
        "server_proxyclient_address = 198.18.1.11\n"
        "[cache]\n"
        "enabled = True\n"
    )
    text = json.dumps(result)
    assert SECRET not in text and OLD_SECRET not in text and "db-Pass-9" not in text


def test_a_secret_never_reaches_the_output(run_module, tmp_path):
    """Neither the new value (no_log) nor the one it replaces; an unchanged secret shows the same mask."""
    path = tmp_path / "rootwrap.conf"
    path.write_text("[xenapi]\nxenapi_connection_password = %s\n" % OLD_SECRET)
    secrets = [{"section": "xenapi", "option": "xenapi_connection_password", "value": SECRET}]
    read = [{"section": "xenapi", "option": "xenapi_connection_password"}]
    for _ in range(2):
        result = run_module(
            ini_settings, dict(path=str(path), secrets=secrets, read=read, _ansible_diff=True), check_mode=False
        )
        text = json.dumps(result)
        assert SECRET not in text and OLD_SECRET not in text
        assert result["current"] == {"xenapi": {"xenapi_connection_password": "********"}}
    assert result["changed"] is False and settings_of(path)["xenapi"]["xenapi_connection_password"] == SECRET


def test_new_file_has_its_owner_group_and_mode_before_it_appears(run_module, tmp_path):
    path = tmp_path / "ceilometer.conf"
    result = run(run_module, path, settings=NOVA_SETTINGS[:1], secrets=NOVA_SECRETS, mode="0640", group="root")
    assert result["changed"] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert (
        path.read_text() == "[DEFAULT]\nforce_config_drive = True\n\n[xenserver]\nconnection_password = %s\n" % SECRET
    )
    assert sorted(os.listdir(tmp_path)) == ["ceilometer.conf"]  # no temporary file left


def test_mode_alone_is_a_change_and_shows_in_the_diff(run_module, nova_conf):
    os.chmod(nova_conf, 0o644)
    result = run_module(ini_settings, dict(path=str(nova_conf), mode="0640", _ansible_diff=True), check_mode=False)
    assert result["changed"] is True and stat.S_IMODE(os.stat(nova_conf).st_mode) == 0o640
    assert result["diff"] == [
        {
            "before": {"mode": "0644"},
            "after": {"mode": "0640"},
            "before_header": str(nova_conf),
            "after_header": str(nova_conf),
        }
    ]
    assert run(run_module, nova_conf, mode="0640")["changed"] is False


def test_a_failure_leaves_the_file_as_it_was(run_module, nova_conf, tmp_path):
    """An unknown group is refused before the new content is written; a new file does not appear at all."""
    result = run(run_module, nova_conf, settings=NOVA_SETTINGS, group="no-such-group-xo")
    assert result["failed"] and nova_conf.read_text() == NOVA_SAMPLE
    result = run(run_module, tmp_path / "new.conf", settings=NOVA_SETTINGS, group="no-such-group-xo")
    assert result["failed"] and sorted(os.listdir(tmp_path)) == ["nova-compute.conf"]


def test_a_symbolic_link_is_followed(run_module, nova_conf, tmp_path):
    link = tmp_path / "link.conf"
    link.symlink_to(nova_conf)
    run(run_module, link, settings=NOVA_SETTINGS[1:2])
    assert link.is_symlink() and "connection_url = http://169.254.0.1" in nova_conf.read_text()


@pytest.mark.parametrize(
    ("text", "setting", "expected"),
    [
        # repeats of an option go, the first keeps its place
        ("[a]\nx = 1\ny = 2\nx = 3\n", {"section": "a", "option": "x", "value": "1"}, "[a]\nx = 1\ny = 2\n"),
        # the same section twice: one option in all of them
        ("[a]\nx = 1\n[b]\n[a]\nx = 2\n", {"section": "a", "option": "x", "value": "3"}, "[a]\nx = 3\n[b]\n[a]\n"),
        # a new option goes after the section's last line, before the blank lines that end it
        ("[a]\nx = 1\n\n\n[b]\n", {"section": "a", "option": "y", "value": "2"}, "[a]\nx = 1\ny = 2\n\n\n[b]\n"),
        # key: value is an option too (oslo.config), and an empty value is written without a trailing space
        ("[a]\nx: 1\n", {"section": "a", "option": "x", "value": ""}, "[a]\nx =\n"),
        # a file without a final newline, and options before any section are left alone
        ("x = 1\n[a]\ny = 2", {"section": "a", "option": "x", "value": "1"}, "x = 1\n[a]\ny = 2\nx = 1\n"),
        # an empty file gets the section
        ("", {"section": "a", "option": "x", "value": 5}, "[a]\nx = 5\n"),
        # removing an option that is not there changes nothing
        ("[a]\n#x = 1\n", {"section": "a", "option": "x", "state": "absent"}, "[a]\n#x = 1\n"),
    ],
    ids=["repeats", "section-twice", "end-of-section", "colon-and-empty", "no-final-newline", "empty-file", "absent"],
)
def test_edits(run_module, tmp_path, text, setting, expected):
    path = tmp_path / "f.ini"
    path.write_text(text)
    result = run(run_module, path, settings=[setting])
    assert path.read_text() == (expected if result["changed"] else text)
    assert result["changed"] is (expected != text)
    assert run(run_module, path, settings=[setting])["changed"] is False


def test_read_returns_the_values_before_the_edit(run_module, nova_conf):
    read = [
        {"section": "xenserver", "option": "vif_driver"},
        {"section": "xenserver", "option": "connection_url"},
        {"section": "vnc", "option": "enabled"},
    ]
    result = run(run_module, nova_conf, settings=NOVA_SETTINGS, read=read, create=False)
    assert result["current"] == {
        "xenserver": {
            "vif_driver": "nova.virt.xenapi.vif.XenAPIBridgeDriver\nnova.virt.xenapi.vif.Other",
            "connection_url": None,
        },
        "vnc": {"enabled": "true"},
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(settings=[{"section": "a", "option": "x"}]), r"settings: \[a\] x: state=present needs a value"),
        (dict(settings=[{"section": "a", "option": "x", "value": "1\n[b]"}]), "line breaks or outer spaces"),
        (dict(settings=[{"section": "a", "option": "x", "value": [1]}]), "is a list; give a string"),
        (dict(settings=[{"section": "[a]", "option": "x", "value": "1"}]), "without brackets"),
        (dict(settings=[{"section": "a", "option": "x=y", "value": "1"}]), "without '='"),
        (
            dict(
                settings=[{"section": "a", "option": "p", "value": "1"}],
                secrets=[{"section": "a", "option": "p", "value": "2"}],
            ),
            r"secrets: \[a\] p is given twice",
        ),
        (dict(secrets=[{"section": "a", "option": "p", "value": " padded"}]), r"secrets: \[a\] p: its value has"),
    ],
    ids=["no-value", "line-break", "list", "brackets", "equals", "twice", "secret-padded"],
)
def test_bad_settings_are_refused_naming_the_setting(run_module, nova_conf, args, message):
    import re

    result = run(run_module, nova_conf, **args)
    assert result["failed"] and re.search(message, result["msg"]), result["msg"]
    assert " padded" not in result["msg"] and nova_conf.read_text() == NOVA_SAMPLE


def test_missing_files_and_directories_are_clear_errors(run_module, tmp_path):
    result = run(run_module, tmp_path / "nova.conf", create=False, settings=NOVA_SETTINGS[:1])
    assert result["failed"] and "does not exist: create it first, or set create=true" in result["msg"]
    result = run(run_module, tmp_path / "neutron" / "agent.ini", settings=NOVA_SETTINGS[:1])
    assert (
        result["failed"]
        and "The directory of %s does not exist" % (tmp_path / "neutron" / "agent.ini") in result["msg"]
    )
    result = run(run_module, tmp_path, settings=NOVA_SETTINGS[:1])
    assert result["failed"] and "is not a regular file" in result["msg"]
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"[a]\nx = \xff\n")
    result = run(run_module, binary, settings=NOVA_SETTINGS[:1])
    assert result["failed"] and "is not UTF-8 text" in result["msg"]
