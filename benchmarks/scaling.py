"""The whole flow (playbooks/site.yml on a fresh bed) on N Dom0 / compute VM pairs against one pair, forks = N.

    . scripts/env.sh && python benchmarks/scaling.py [--pairs 5] [--runs 1] [-- PLAYBOOK-ARGS]

For each run: a fresh namespace test bed (tests/bed, as root; namespaces prefixed with XS_BED_PREFIX, ``xsb-``
unless set) with one pair, site.yml with ``--forks N``, the bed taken down; then the same with N pairs. The wall
time of each ansible-playbook run is measured, and the CPU time of its process tree (the controller, its workers
and every module run; not the simulated Dom0s). With ``--runs`` above 1, medians are compared. The ratio
printed last is wall time on N pairs / wall time on one pair: 1.00 is perfect parallelism, N is serial. On a
machine with fewer CPUs than N, CPU time bounds it: the script prints the wall time the CPUs allow as well.
Not a timed test: it prints figures. site.yml runs as it is, so the figures follow the roles as they land in it.
Arguments after ``--`` go to ansible-playbook.
"""

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("XS_BED_PREFIX", "xsb-")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from bedlib import Bed, failures, machine  # noqa: E402

SITE = os.path.join(ROOT, "playbooks", "site.yml")


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def flow(pairs, forks, args, work):
    """Bring up a fresh bed of ``pairs`` pairs, run site.yml on it; return (wall s, CPU s, stats per host)."""
    bed = Bed(tempfile.mkdtemp(prefix="bed-%d-" % pairs, dir=work), "--pairs", str(pairs))
    try:
        cpu, started = children_cpu(), time.monotonic()
        code, report, output = bed.playbook(SITE, "--forks", str(forks), *args)
        wall, cpu = time.monotonic() - started, children_cpu() - cpu
    finally:
        bed.down()
    if code != 0 or report is None:
        raise SystemExit(
            "site.yml on %d pairs failed (rc %d): %s" % (pairs, code, failures(report) if report else output[-3000:])
        )
    return wall, cpu, report["stats"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--pairs", type=int, default=5, help="N, the pairs of the large bed and the forks (default 5)")
    parser.add_argument("--runs", type=int, default=1, help="measurements of each size; medians are compared")
    parser.add_argument("playbook_args", nargs="*", help="arguments for ansible-playbook, after --")
    options = parser.parse_args()
    if options.pairs < 2:
        parser.error("--pairs must be 2 or more")
    work = tempfile.mkdtemp(prefix="scaling-")
    print("machine: %s" % machine())
    walls, cpus = {1: [], options.pairs: []}, {1: [], options.pairs: []}
    try:
        for _ in range(options.runs):
            for pairs in (1, options.pairs):
                wall, cpu, stats = flow(pairs, options.pairs, options.playbook_args, work)
                walls[pairs].append(wall)
                cpus[pairs].append(cpu)
                tasks = sum(s["ok"] + s["changed"] for s in stats.values())
                print(
                    "%d pair(s), forks %d: %.2f s wall, %.2f s CPU, %d hosts, %d tasks ok/changed"
                    % (pairs, options.pairs, wall, cpu, len(stats), tasks)
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    one, many = statistics.median(walls[1]), statistics.median(walls[options.pairs])
    cpu_one, cpu_many = statistics.median(cpus[1]), statistics.median(cpus[options.pairs])
    nproc = os.cpu_count() or 1
    print("1 pair:  %.2f s wall (median), %.2f s CPU" % (one, cpu_one))
    print("%d pairs: %.2f s wall (median), %.2f s CPU" % (options.pairs, many, cpu_many))
    print("CPU time ratio, %d pairs / 1 pair: %.2f" % (options.pairs, cpu_many / cpu_one))
    # What each compute host costs the controller (and, on the bed, its module runs): the CPU the N - 1 added pairs
    # took, per pair. Less sensitive to other load on the machine than the wall times.
    print(
        "CPU per host (each added pair: (CPU on %d pairs - CPU on 1 pair) / %d): %.2f s"
        % (options.pairs, options.pairs - 1, (cpu_many - cpu_one) / (options.pairs - 1))
    )
    print("load average at the end: %s" % " ".join("%.2f" % load for load in os.getloadavg()))
    print(
        "wall time the %d CPUs allow for %d pairs (one pair's wall, or CPU / nproc if longer): %.2f s"
        % (nproc, options.pairs, max(one, cpu_many / nproc))
    )
    print("ratio: %.2f" % (many / one))


if __name__ == "__main__":
    main()
