"""playbooks/site.yml as Ansible's controller reads it, apart from any run."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = os.path.join(ROOT, "playbooks", "site.yml")

# In a fresh interpreter: the filter loader's cache is per process, and other tests may have filled it in this one.
TEMPLATE_FIRST_HOSTS = textwrap.dedent(
    """
    import json, sys
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import filter_loader, test_loader
    from ansible.template import Templar

    loader = DataLoader()
    hosts = loader.load_from_file(sys.argv[1], trusted_as_template=True)[0]["hosts"]  # as a playbook is read
    def loaded():
        return [len(plugins._cached_non_collection_wrappers) for plugins in (filter_loader, test_loader)]

    before = loaded()
    value = Templar(loader=loader, variables={}).template(hosts)
    print(json.dumps({"hosts": str(hosts), "value": value, "before": before, "after": loaded()}))
    """
)


def test_the_first_play_loads_the_filter_and_test_plugins_in_the_controller_process():
    """The first play's hosts, templated in the process that forks every task's worker, load filters and tests there.

    PlaybookExecutor templates each play's keywords in ansible-playbook's main process before the play runs; the
    workers forked after it inherit the loaded plugins instead of loading them again for each task
    (docs/performance.md). The play still targets the compute group.
    """
    import json

    run = subprocess.run(
        [sys.executable, "-c", TEMPLATE_FIRST_HOSTS, SITE], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["value"] == "compute"
    assert found["before"] == [0, 0], found
    filters, tests = found["after"]
    assert filters > 0, "the first play's hosts %r load no filter plugin" % found["hosts"]
    assert tests > 0, "the first play's hosts %r load no test plugin" % found["hosts"]
