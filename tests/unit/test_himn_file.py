"""himn_file: one small text file whole, in one module run - written only when it changes, atomically, with its
owner, group and mode; check mode and diff; a missing directory made only when asked."""

import os
import stat

from ansible_collections.xenserver.openstack.plugins.modules import himn_file

CRON = '# xenserver.openstack\nMAILTO=""\n17 3 * * * root /usr/local/bin/xenserver-openstack-image-cache\n'


def mode_of(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_a_new_file_in_a_new_directory_then_nothing_to_do(run_module, tmp_path):
    path = tmp_path / "conf.d" / "xenserver-openstack.conf"
    args = dict(path=str(path), content=CRON, mode="0640", directory_mode="0750", _ansible_diff=True)
    result = run_module(himn_file, args)
    assert result["changed"] and result["content_changed"], result
    assert path.read_text() == CRON and mode_of(path) == 0o640 and mode_of(path.parent) == 0o750
    assert result["diff"][0]["before"] == "" and result["diff"][0]["after"] == CRON
    assert result["diff"][0]["before_header"].endswith("(absent)")
    again = run_module(himn_file, args)
    assert not again["changed"] and not again["content_changed"] and again["diff"] == [], again
    assert sorted(os.listdir(str(path.parent))) == ["xenserver-openstack.conf"]  # no temporary file left


def test_check_mode_changes_nothing_and_says_what_would(run_module, tmp_path):
    path = tmp_path / "job.cron"
    path.write_text("old\n")
    os.chmod(str(path), 0o600)
    result = run_module(himn_file, dict(path=str(path), content=CRON, mode="0644", _ansible_diff=True), True)
    assert result["changed"] and result["content_changed"], result
    assert path.read_text() == "old\n" and mode_of(path) == 0o600
    assert result["diff"][0]["before"] == "old\n" and result["diff"][0]["after"] == CRON
    assert result["diff"][1]["before"]["mode"] == "0600" and result["diff"][1]["after"]["mode"] == "0644"
    missing = tmp_path / "new" / "file"
    predicted = run_module(himn_file, dict(path=str(missing), content=CRON, directory_mode="0755"), True)
    assert predicted["changed"] and not missing.parent.exists()


def test_a_new_content_replaces_the_file_and_a_mode_alone_is_a_change(run_module, tmp_path):
    path = tmp_path / "job.cron"
    path.write_text("old\n")
    inode = os.stat(str(path)).st_ino
    result = run_module(himn_file, dict(path=str(path), content=CRON, mode="0644"))
    assert result["changed"] and path.read_text() == CRON
    assert os.stat(str(path)).st_ino != inode  # renamed over it, not rewritten in place
    os.chmod(str(path), 0o666)
    result = run_module(himn_file, dict(path=str(path), content=CRON, mode="0644"))
    assert result["changed"] and not result["content_changed"] and mode_of(path) == 0o644


def test_absent_removes_the_file_once(run_module, tmp_path):
    path = tmp_path / "job.cron"
    path.write_text(CRON)
    result = run_module(himn_file, dict(path=str(path), state="absent", _ansible_diff=True), True)
    assert result["changed"] and path.exists()
    assert run_module(himn_file, dict(path=str(path), state="absent"))["changed"] and not path.exists()
    gone = run_module(himn_file, dict(path=str(path), state="absent", _ansible_diff=True))
    assert not gone["changed"] and gone["diff"] == []  # nothing to remove, nothing to show


def test_refusals_name_the_path_and_the_fix(run_module, tmp_path):
    result = run_module(himn_file, dict(path=str(tmp_path), content=CRON))
    assert result["failed"] and result["msg"] == (
        "%s is not a regular file: give the path of a file, or remove what is there." % tmp_path
    )
    missing = tmp_path / "absent" / "file"
    result = run_module(himn_file, dict(path=str(missing), content=CRON))
    assert result["failed"] and "The directory %s does not exist" % missing.parent in result["msg"]
    assert "directory_mode" in result["msg"]
    result = run_module(himn_file, dict(path=str(tmp_path / "file")))
    assert result["failed"] and "state is present but all of the following are missing: content" in result["msg"]
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    result = run_module(himn_file, dict(path=str(binary), content=CRON))
    assert result["failed"] and "is not UTF-8 text" in result["msg"] and binary.read_bytes() == b"\xff\xfe\x00"
