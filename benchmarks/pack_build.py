"""Time and size of the Dom0 pack with nova's plugin set, against the collection's plugin alone.

    . scripts/env.sh && python benchmarks/pack_build.py [--runs 3]

Builds with tools/build_pack.py, signed with a throw-away key made here, into scratch directories:
- the collection's own plugin only (--plugin-set none);
- with nova 21's set (os-xenapi 0.3.4) and an empty download cache: download from PyPI, checks, build;
- the same with the archive cached (what every later build of a controller pays);
- the same build once more, unchanged (the record next to the ISO answers; what a converged site.yml pays).
Each figure is the median of --runs runs. Not a timed test: it prints the figures and the ratios to the first, and
last the build time with the set (archive cached) over the time without it.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = [sys.executable, os.path.join(ROOT, "tools", "build_pack.py")]


def make_key(home):
    os.makedirs(home, mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", home]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", "bench", "rsa2048", "sign", "never"],
                   check=True, capture_output=True)  # fmt: skip
    listing = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], capture_output=True, text=True, check=True)
    return next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:"))


def build(*args):
    started = time.monotonic()
    proc = subprocess.run([*BUILD, *args], capture_output=True, text=True, check=True)
    return time.monotonic() - started, json.loads(proc.stdout)


def median_run(runs, prepare, *args):
    times, result = [], None
    for _ in range(runs):
        prepare()
        elapsed, result = build(*args)
        times.append(elapsed)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="xso-pack-bench-")
    try:
        home = os.path.join(work, "gpg")
        key = ["--gpg-home", home, "--key", make_key(home)]
        cache, out = os.path.join(work, "cache"), os.path.join(work, "out")

        def fresh_output():
            shutil.rmtree(out, ignore_errors=True)

        def fresh_cache_and_output():
            shutil.rmtree(cache, ignore_errors=True)
            fresh_output()

        nova = ["--nova-version", "21.2.4", "--cache-dir", cache, "--output", out, *key]
        alone = ["--plugin-set", "none", "--output", out, *key]
        rows = [
            ("collection's plugin only", *median_run(options.runs, fresh_output, *alone)),
            ("with os-xenapi 0.3.4, empty cache", *median_run(options.runs, fresh_cache_and_output, *nova)),
            ("with os-xenapi 0.3.4, cached archive", *median_run(options.runs, fresh_output, *nova)),
            ("the same build again (unchanged)", *median_run(options.runs, lambda: None, *nova)),
        ]
        base_time, base = rows[0][1], rows[0][2]
        print("%-38s %9s %8s %10s %8s %s" % ("pack", "seconds", "ratio", "ISO bytes", "ratio", "files"))
        for name, seconds, result in rows:
            print("%-38s %9.2f %7.2fx %10d %7.2fx %d" % (
                name, seconds, seconds / base_time, result["size"], result["size"] / base["size"], len(result["files"]),
            ))  # fmt: skip
        print("ratio: %.2f" % (rows[2][1] / base_time))  # with the set (archive cached) / without
    finally:
        subprocess.run(["gpgconf", "--homedir", os.path.join(work, "gpg"), "--kill", "gpg-agent"], check=False,
                       capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
