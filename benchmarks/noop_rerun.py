"""No-op re-run of playbooks/site.yml against a play of as many no-op tasks on the same hosts.

    . scripts/env.sh && python benchmarks/noop_rerun.py [--pairs 1] [--runs 1] [--keep-bed] [-- PLAYBOOK-ARGS]

Brings up a namespace test bed (tests/bed, as root; the namespaces are prefixed with XS_BED_PREFIX, ``xsb-``
unless set), runs playbooks/site.yml once to converge it, then measures, ``--runs`` times each, alternating:

- the re-run of site.yml, which must change nothing (the script says so when it does);
- a generated play that mirrors the re-run task by task on the same hosts: where a task ran a module on a host,
  ``ansible.builtin.ping`` (a module sent to and run on that host: the same connection, interpreter and
  AnsiballZ round trip, doing nothing), once per loop item; where a task ran on the controller only (debug,
  set_fact, assert, include_*, argument validation), ``ansible.builtin.debug``; where it was skipped, a skipped
  debug. The two have the same number of tasks, and the same number of module runs on each host.

It prints the time spent in the tasks that ran a module, in controller-only tasks and in skipped tasks, for the
re-run and for its mirror, and the tasks of the re-run that took longest beyond their mirrored task. It also times a
play of only ``ansible.builtin.debug`` tasks, one per task the re-run executed (Ansible's own
per-task cost, no module run at all), for reference. The ratio printed last is re-run / mirrored no-op play
(medians); the goal is 1.5 or less. Not a timed test: it prints figures. site.yml runs as it is, so the
figures follow the roles as they land in it. Arguments after ``--`` go to every ansible-playbook run.
"""

import os
import statistics
import sys
import time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("XS_BED_PREFIX", "xsb-")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import yaml  # noqa: E402
from bedlib import Bed, bed_benchmark_options, end_benchmark_bed, failures, machine  # noqa: E402

SITE = os.path.join(ROOT, "playbooks", "site.yml")
# Actions that run on the controller only: no module goes to the host.
CONTROLLER_ONLY = {
    "add_host",
    "assert",
    "debug",
    "fail",
    "group_by",
    "import_role",
    "import_tasks",
    "include_role",
    "include_tasks",
    "include_vars",
    "meta",
    "set_fact",
    "set_stats",
    "validate_argument_spec",
}


def timed_playbook(bed, playbook, *args):
    """Run a playbook on the bed; return (wall seconds, the json callback's report). Stops on a failure."""
    started = time.monotonic()
    code, report, output = bed.playbook(playbook, *args)
    seconds = time.monotonic() - started
    if code != 0 or report is None:
        detail = failures(report) if report else output[-3000:]
        raise SystemExit("%s failed (rc %d): %s" % (os.path.basename(playbook), code, detail))
    return seconds, report


def short_action(action):
    return (action or "").rsplit(".", 1)[-1]


def mirror(report):
    """The plays that mirror a site.yml report with no-op tasks; and the number of tasks executed per host."""
    plays, executed = [], {}
    for number, play in enumerate(report["plays"], 1):
        tasks, hosts = [], []
        for index, task in enumerate(play["tasks"], 1):
            runs, on_controller, looped = {}, True, False
            for host, result in task["hosts"].items():
                if host not in hosts:
                    hosts.append(host)
                looped = looped or "results" in result
                items = [r for r in result.get("results", [result]) if not r.get("skipped")]
                if result.get("skipped") or not items:
                    continue
                runs[host] = len(items)
                on_controller = on_controller and short_action(result.get("action")) in CONTROLLER_ONLY
                executed[host] = executed.get(host, 0) + 1
            noop = {"name": "No-op %d.%d" % (number, index)}
            if not runs:
                noop.update({"ansible.builtin.debug": {"msg": "skipped"}, "when": False})
            elif on_controller:
                noop.update(
                    {"ansible.builtin.debug": {"msg": "no-op"}, "when": "inventory_hostname in %r" % sorted(runs)}
                )
            elif looped:
                noop.update(
                    {"ansible.builtin.ping": {}, "loop": "{{ range(%r.get(inventory_hostname, 0)) | list }}" % runs}
                )
            else:
                noop.update({"ansible.builtin.ping": {}, "when": "inventory_hostname in %r" % sorted(runs)})
            tasks.append(noop)
        if hosts:
            plays.append(
                {"name": "No-op play %d" % number, "hosts": ",".join(hosts), "gather_facts": False, "tasks": tasks}
            )
    return plays, executed


def debug_only(executed):
    """A play of ansible.builtin.debug tasks: on each host, one per task that the re-run executed there."""
    return [
        {
            "name": "Debug-only play",
            "hosts": ",".join(sorted(executed)),
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Debug %d" % i,
                    "ansible.builtin.debug": {"msg": "no-op"},
                    "when": "%d <= %r[inventory_hostname]" % (i, executed),
                }
                for i in range(1, max(executed.values()) + 1)
            ],
        }
    ]


def write(path, plays):
    with open(path, "w") as handle:
        yaml.safe_dump(plays, handle, sort_keys=False, width=200)
    return path


def seconds_of(task):
    duration = task["task"]["duration"]
    start, end = (datetime.fromisoformat(duration[k].replace("Z", "+00:00")) for k in ("start", "end"))
    return (end - start).total_seconds()


def split_times(report):
    """Seconds spent in a report's tasks: those that ran a module on a host, controller-only ones, skipped ones."""
    kinds = {"module": 0.0, "controller": 0.0, "skipped": 0.0}
    for play in report["plays"]:
        for task in play["tasks"]:
            results = list(task["hosts"].values())
            if all(result.get("skipped") for result in results):
                kind = "skipped"
            elif all(short_action(result.get("action")) in CONTROLLER_ONLY for result in results):
                kind = "controller"
            else:
                kind = "module"
            kinds[kind] += seconds_of(task)
    return kinds


def excess(report, noop_report):
    """[(re-run seconds, mirror seconds, task name)] of each task, the largest excess over its mirror first."""
    mirrored = {task["task"]["name"]: seconds_of(task) for play in noop_report["plays"] for task in play["tasks"]}
    pairs = []
    for number, play in enumerate(report["plays"], 1):
        for index, task in enumerate(play["tasks"], 1):
            mirror_s = mirrored.get("No-op %d.%d" % (number, index), 0.0)
            pairs.append((seconds_of(task), mirror_s, task["task"]["name"]))
    return sorted(pairs, key=lambda item: item[0] - item[1], reverse=True)


def main():
    options, work, state_dir = bed_benchmark_options(
        __doc__, "measurements of each play; medians are compared", "noop-rerun-"
    )
    extra = options.playbook_args
    print("machine: %s" % machine())
    bed = Bed(state_dir, "--pairs", str(options.pairs))
    try:
        converge, _report = timed_playbook(bed, SITE, *extra)
        print("site.yml, first run (converge): %.2f s" % converge)
        _seconds, report = timed_playbook(bed, SITE, *extra)
        plays, executed = mirror(report)
        noop = write(os.path.join(work, "noop.yml"), plays)
        debug = write(os.path.join(work, "debug.yml"), debug_only(executed))
        rerun_times, noop_times, debug_times, changed = [], [], [], 0
        for _ in range(options.runs):
            seconds, report = timed_playbook(bed, SITE, *extra)
            rerun_times.append(seconds)
            changed = max(changed, sum(stats["changed"] for stats in report["stats"].values()))
            seconds, noop_report = timed_playbook(bed, noop, *extra)
            noop_times.append(seconds)
            debug_times.append(timed_playbook(bed, debug, *extra)[0])
        total = sum(len(play["tasks"]) for play in plays)
        module_runs = sum(
            len(result.get("results", [result]))
            for play in report["plays"]
            for task in play["tasks"]
            for result in task["hosts"].values()
            if not result.get("skipped") and short_action(result.get("action")) not in CONTROLLER_ONLY
        )
        print("hosts: %s" % ", ".join("%s (%d tasks executed)" % item for item in sorted(executed.items())))
        print("tasks in the re-run: %d, module runs on hosts: %d" % (total, module_runs))
        for label, kinds in (("re-run", split_times(report)), ("mirror", split_times(noop_report))):
            print(
                "%s: %.2f s in tasks that ran a module on a host, %.2f s in controller-only tasks, %.2f s in skipped"
                " tasks" % (label, kinds["module"], kinds["controller"], kinds["skipped"])
            )
        print("tasks of the last re-run that took longest beyond their no-op mirror (re-run, mirror, excess):")
        for rerun_s, mirror_s, name in excess(report, noop_report)[:8]:
            print("  %6.2f s %6.2f s %+6.2f s  %s" % (rerun_s, mirror_s, rerun_s - mirror_s, name))
        if changed:
            print("WARNING: the re-run changed %d things: site.yml is not idempotent on this bed" % changed)
        rerun, mirrored, plain = (statistics.median(t) for t in (rerun_times, noop_times, debug_times))
        print("site.yml re-run:      %s s (median %.2f)" % (" ".join("%.2f" % t for t in rerun_times), rerun))
        print("mirrored no-op play:  %s s (median %.2f)" % (" ".join("%.2f" % t for t in noop_times), mirrored))
        print("debug-only play:      %s s (median %.2f)" % (" ".join("%.2f" % t for t in debug_times), plain))
        print("re-run / debug-only play: %.2f" % (rerun / plain))
        # Each re-run and its mirror ran one after the other: their ratio is the least disturbed by a machine whose
        # speed drifts between measurements.
        pairs = [r / m for r, m in zip(rerun_times, noop_times)]
        print(
            "ratio of each re-run to the mirror run after it: %s (median %.2f)"
            % (" ".join("%.2f" % p for p in pairs), statistics.median(pairs))
        )
        print("ratio: %.2f" % (rerun / mirrored))
    finally:
        end_benchmark_bed(bed, options, work)


if __name__ == "__main__":
    main()
