"""The ini_changes filter: which settings an INI edit would change, so that a converged run edits nothing.

Each verdict is checked against what community.general.ini_file itself does with the same file: a setting the
filter calls in place is one that ini_file leaves unchanged; the filter calls a change only what ini_file changes,
except a duplicated option or section, which it leaves to ini_file.
"""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.community.general.plugins.modules import ini_file
from ansible_collections.xenserver.openstack.plugins.filter.misc_patches import ini_changes

CACHE = {"section": "cache", "option": "enabled", "value": "True"}
SERVERS = {"section": "DEFAULT", "option": "memcached_servers", "value": "10.0.0.2:11211"}

CASES = [
    ("[DEFAULT]\nmemcached_servers = 10.0.0.2:11211\n[cache]\nenabled = True\n", []),
    ("[DEFAULT]\nmemcached_servers=10.0.0.2:11211\n[cache]\n  enabled =True\n", [CACHE, SERVERS]),
    ("[DEFAULT]\n[cache]\nenabled = False\n", [CACHE, SERVERS]),
    ("[DEFAULT]\nmemcached_servers = 10.0.0.2:11211\n", [CACHE]),
    ("[DEFAULT]\nmemcached_servers = 10.0.0.2:11211\n[cache]\n#enabled = True\n", [CACHE]),
    ("[DEFAULT]\nmemcached_servers = 10.0.0.2:11211\n[cache]\nenabled = True\nenabled = True\n", [CACHE]),
    ("[DEFAULT]\nmemcached_servers = 10.0.0.2:11211\n[cache]\nenabled = True\n[cache]\nbackend = x\n", [CACHE]),
    ("[cache]\nenabled = True\n[other]\nmemcached_servers = 10.0.0.2:11211\n", [SERVERS]),
]


@pytest.mark.parametrize(("content", "changes"), CASES)
def test_settings_not_in_place(content, changes):
    assert ini_changes(content, [CACHE, SERVERS]) == changes


@pytest.mark.parametrize(("content", "changes"), CASES)
def test_in_place_means_ini_file_changes_nothing(tmp_path, run_module, content, changes):
    """community.general.ini_file in check mode, on the same file, for each setting the filter calls in place."""
    path = tmp_path / "nova.conf"
    path.write_text(content)
    for setting in (CACHE, SERVERS):
        result = run_module(ini_file, dict(path=str(path), create=False, **setting), check_mode=True)
        if setting not in changes:
            assert result["changed"] is False, setting
        elif "enabled = True\nenabled" not in content and content.count("[cache]") < 2:
            assert result["changed"] is True, setting  # only duplicates are a change for the filter alone


def test_bad_input_is_a_clear_error():
    with pytest.raises(AnsibleFilterError, match="text of an INI file"):
        ini_changes(None, [CACHE])
    with pytest.raises(AnsibleFilterError, match="dict of section, option, value"):
        ini_changes("[cache]\n", [{"section": "cache"}])
