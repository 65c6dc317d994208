"""Helpers for tests that run playbooks against the namespace test bed (tests/bed)."""

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
BED = [sys.executable, os.path.join(TESTS, "bed", "bed.py")]
PREFIX = os.environ.get("XS_BED_PREFIX", "xs-")


def ns(host):
    """The namespace of a bed host (``dom0-1``, ``compute-1``, ``ctl``, ``sw``)."""
    return PREFIX + host


TCP_PROBE = textwrap.dedent(
    """
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    except OSError:
        sys.exit(1)
    """
)
LISTENER = textwrap.dedent(
    """
    import socket, sys
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", int(sys.argv[1])))
    server.listen(16)
    print("ready", flush=True)
    while True:
        server.accept()[0].close()
    """
)
HTTP = (
    "import sys, urllib.request as u; "
    "print(u.urlopen(u.Request(sys.argv[1], method=sys.argv[2]), timeout=5).read().decode())"
)


def ansible_env():
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_CONNECTION_PLUGINS=os.path.join(TESTS, "bed", "connection_plugins"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
    )
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    return env


class Bed:
    """One test bed brought up in ``state_dir``; ``down()`` removes it."""

    def __init__(self, state_dir, *options):
        self.state_dir = state_dir
        try:
            self.bed("up", *options)
        except AssertionError:
            self.down()
            raise
        self.inventory = self.bed("inventory").strip()

    def bed(self, command, *options):
        run = subprocess.run(
            [*BED, command, "--state-dir", self.state_dir, *options], capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, "bed.py %s failed: %s" % (command, run.stderr.strip())
        return run.stdout

    def down(self):
        self.bed("down")

    def root(self, host):
        """The directory that holds a bed host's own files (its /etc entries)."""
        return os.path.join(self.state_dir, host, "root")

    def run(self, netns, *argv, check=True):
        return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, check=check)

    def tcp_ok(self, netns, host, port, timeout=2.0):
        return (
            self.run(netns, sys.executable, "-c", TCP_PROBE, host, str(port), str(timeout), check=False).returncode == 0
        )

    def http(self, netns, url, method="GET"):
        return self.run(netns, sys.executable, "-c", HTTP, url, method).stdout.strip()

    def listen(self, netns, port):
        """Start a TCP listener in a namespace; the caller terminates the returned process."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def playbook(self, playbook, *args, line=None, env=None, inventory=None):
        """Run ansible-playbook on the bed; return (returncode, the json callback's report or None, output).

        ``line``: a pythons.Line, to run that ansible-core line's ansible-playbook with its collections; ``env`` adds
        to the environment; ``inventory`` replaces the bed's own inventory file.
        """
        environ = dict(ansible_env() if line is None else line.env(ansible_env()), **(env or {}))
        run = subprocess.run(
            [
                line.tool("ansible-playbook") if line else "ansible-playbook",
                playbook,
                "-i",
                inventory or self.inventory,
                *args,
            ],
            capture_output=True,
            text=True,
            env=environ,
            cwd=ROOT,
            check=False,
        )
        start = run.stdout.find("{")
        # The json callback's report; what an aggregate callback (xenserver.openstack.plan) prints after it is not.
        report = json.JSONDecoder().raw_decode(run.stdout[start:])[0] if start >= 0 else None
        return run.returncode, report, run.stdout + run.stderr


def task_results(report, host, name_prefix):
    """The results of ``host`` for each task whose name starts with ``name_prefix``."""
    return [
        task["hosts"][host]
        for play in report["plays"]
        for task in play["tasks"]
        if task["task"]["name"].startswith(name_prefix) and host in task["hosts"]
    ]


def failures(report):
    """The messages of every failed task, one string (for assertions)."""
    return " | ".join(
        str(result.get("msg"))
        for play in report["plays"]
        for task in play["tasks"]
        for result in task["hosts"].values()
        if result.get("failed")
    )


def changed_tasks(report):
    """[(task name, host)] of every changed result: empty on a converged re-run."""
    return [
        (task["task"]["name"], host)
        for play in report["plays"]
        for task in play["tasks"]
        for host, result in task["hosts"].items()
        if result.get("changed")
    ]


def machine():
    """One line describing this machine, for the record of a benchmark."""
    from ansible.release import __version__ as ansible_version

    with open("/proc/meminfo") as handle:
        mem_kib = int(next(line for line in handle if line.startswith("MemTotal:")).split()[1])
    return "nproc %d, memory %.1f GiB, kernel %s, Python %s, ansible-core %s, load average %s" % (
        os.cpu_count(),
        mem_kib / 1024.0 / 1024.0,
        platform.release(),
        platform.python_version(),
        ansible_version,
        " ".join("%.2f" % load for load in os.getloadavg()),
    )


def bed_benchmark_options(doc, runs_help, prefix):
    """Parse the options of a benchmark that runs on one bed; return (options, scratch directory, bed state dir).

    --pairs, --runs, --state-dir, --keep-bed, and the arguments after -- for every ansible-playbook run.
    """
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--pairs", type=int, default=1, help="Dom0 / compute VM pairs in the bed (default 1)")
    parser.add_argument("--runs", type=int, default=1, help=runs_help)
    parser.add_argument("--state-dir", help="the bed's state directory (default: a new temporary directory)")
    parser.add_argument("--keep-bed", action="store_true", help="leave the bed up at the end")
    parser.add_argument("playbook_args", nargs="*", help="arguments for ansible-playbook, after --")
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix=prefix)
    return options, work, options.state_dir or os.path.join(work, "bed")


def end_benchmark_bed(bed, options, work):
    """Take a benchmark's bed down and remove its scratch directory, or say where it is with --keep-bed."""
    if options.keep_bed:
        print("bed kept: %s (down: python tests/bed/bed.py down --state-dir %s)" % (bed.state_dir, bed.state_dir))
    else:
        bed.down()
        shutil.rmtree(work, ignore_errors=True)
