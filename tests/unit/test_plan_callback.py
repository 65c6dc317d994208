"""The xenserver.openstack.plan callback on a real ansible-playbook run on localhost: one block per host of what would
change (check mode) or changed, the names of the configuration keys and never their values, the hosts with nothing
to change, a failed host named, and the JSON plan file. The bed's runs (tests/integration/test_check_mode.py) cover
the pack, the routes and the NAT rules.
"""

import json
import os
import subprocess
import sys
import textwrap

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
SECRET = "s3cret-value-never-shown"

PLAYBOOK = textwrap.dedent(
    """
    - name: Plan
      hosts: all
      gather_facts: false
      tasks:
        - name: Set the keys
          xenserver.openstack.ini_settings:
            path: "{{ conf }}"
            mode: "0600"
            settings:
              - {section: xenserver, option: connection_url, value: "http://169.254.0.1"}
            secrets:
              - {section: xenserver, option: connection_password, value: "%s"}
          when: inventory_hostname == 'one'

        - name: Fail on one host
          ansible.builtin.fail:
            msg: broken
          when: inventory_hostname == 'three'
    """
    % SECRET
)


def run(tmp_path, *args):
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "inventory.ini").write_text(
        "".join(
            "%s ansible_connection=local ansible_python_interpreter=%s conf=%s\n"
            % (host, sys.executable, tmp_path / (host + ".conf"))
            for host in ("one", "two", "three")
        )
    )
    plan = tmp_path / "plan.json"
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_CALLBACKS_ENABLED="xenserver.openstack.plan",
        XENSERVER_OPENSTACK_PLAN_FILE=str(plan),
        ANSIBLE_NOCOLOR="1",
    )
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "inventory.ini", "site.yml", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout
    return output[output.index("PLAN") if "PLAN" in output else output.index("CHANGES MADE") :], json.loads(
        plan.read_text()
    )


def test_a_check_run_lists_per_host_what_would_change_with_key_names_only(tmp_path):
    report, plan = run(tmp_path, "--check", "--diff")
    lines = report.splitlines()
    assert lines[0].startswith("PLAN (check mode: nothing was changed)")
    assert lines[1:] == [
        "one: 1 task(s) would change",
        "  - Set the keys: %s: added xenserver.connection_url, added xenserver.connection_password"
        % (tmp_path / "one.conf"),
        "three: failed at: Fail on one host",
        "two: nothing to change",
    ]
    assert SECRET not in report and SECRET not in json.dumps(plan)
    assert plan["check_mode"] is True
    assert plan["hosts"]["one"]["changes"][0]["what"].endswith("added xenserver.connection_password")
    assert plan["hosts"]["three"]["failed"] == "failed at: Fail on one host"
    assert not (tmp_path / "one.conf").exists()


def test_a_real_run_lists_what_changed_then_a_rerun_nothing(tmp_path):
    report, plan = run(tmp_path)
    assert report.splitlines()[:2] == ["CHANGES MADE " + report.splitlines()[0][13:], "one: 1 task(s) changed"]
    assert plan["check_mode"] is False
    report, plan = run(tmp_path)
    assert "one: nothing changed" in report.splitlines()
    assert plan["hosts"]["one"]["changes"] == []
