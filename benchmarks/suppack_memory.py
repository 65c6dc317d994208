"""Peak memory of xenserver.openstack.xen_suppack uploading a 10 MB and a 200 MB pack ISO to XAPI.

    . scripts/env.sh && python benchmarks/suppack_memory.py [--small-mb 10] [--large-mb 200] [--keep]

The ISO is the collection's real pack (tools/build_pack.py, signed with a throw-away key made here), padded with
zeros to the size wanted: trailing zeros after an ISO 9660 image are harmless, and they are uploaded like the rest.
Each module run is a process of its own against a fresh XAPI simulator (tests/xapisim) on loopback, so each one
uploads, introduces and applies; its peak RSS comes from wait4(). Not a timed test: it prints the figures and, last,
the ratio of the two peaks, which stays near 1 when the upload streams in constant memory.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from xapisim.pytest_plugin import scenario_path  # noqa: E402
from xapisim.server import Simulator  # noqa: E402

MODULE_RUN = """
import json, sys
from ansible.module_utils.testing import patch_module_args
from ansible_collections.xenserver.openstack.plugins.modules import xen_suppack
with patch_module_args(json.loads(sys.argv[1])):
    xen_suppack.main()
"""


def make_key(home):
    os.makedirs(home, mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", home]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", "benchmark", "rsa2048", "sign", "never"], check=True)
    listing = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], capture_output=True, text=True, check=True)
    return next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:"))


def make_pack(work):
    home = os.path.join(work, "gpg")
    fingerprint = make_key(home)
    argv = [sys.executable, os.path.join(ROOT, "tools", "build_pack.py"), "--output", os.path.join(work, "pack.iso")]
    argv += ["--gpg-home", home, "--key", fingerprint]
    built = subprocess.run(argv, capture_output=True, text=True, check=False)
    if built.returncode != 0:
        sys.exit("building the pack failed: %s" % built.stderr)
    return json.loads(built.stdout)["iso"]


def padded(iso, size_mb, work):
    """A copy of the ISO followed by zeros up to size_mb MB (written in blocks, not held in memory)."""
    target = os.path.join(work, "pack-%dmb.iso" % size_mb)
    shutil.copy(iso, target)
    block = b"\0" * (1 << 20)
    with open(target, "ab") as handle:
        remaining = size_mb * 1000 * 1000 - os.path.getsize(target)
        while remaining > 0:
            handle.write(block[: min(len(block), remaining)])
            remaining -= len(block)
    return target


def measured(args):
    """Run the module in a process of its own; return (its JSON result, wall seconds, peak RSS in MiB)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "collections"))
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", MODULE_RUN, json.dumps(args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    out = proc.stdout.read()
    err = proc.stderr.read()
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    seconds = time.monotonic() - started
    try:
        result = json.loads(out)
    except ValueError:
        sys.exit("the module printed no JSON: %s %s" % (out[-2000:], err[-2000:]))
    return result, seconds, usage.ru_maxrss / 1024.0


def run_one(iso, work):
    sim = Simulator(scenario_path("xcpng-8.3"), root=tempfile.mkdtemp(prefix="sim-", dir=work))
    sim.start()
    try:
        creds = sim.scenario["credentials"]
        args = dict(
            url=sim.url,
            username=creds["username"],
            password=creds["password"],
            iso=iso,
            vm_uuid=sim.scenario["vms"]["compute"]["uuid"],
        )
        result, seconds, rss = measured(args)
        if result.get("failed") or not result.get("uploaded"):
            sys.exit("the module did not upload: %s" % result.get("msg", result))
        return seconds, rss, sim.counts().get("PUT /import_raw_vdi", 0)
    finally:
        sim.stop()
        shutil.rmtree(sim.root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--small-mb", type=int, default=10)
    parser.add_argument("--large-mb", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="suppack-memory-")
    try:
        iso = make_pack(work)
        print("%8s %14s %10s %10s %6s" % ("ISO MB", "peak RSS MiB", "seconds", "MB/s", "PUTs"))
        peaks = []
        for size in (options.small_mb, options.large_mb):
            seconds, rss, puts = run_one(padded(iso, size, work), work)
            peaks.append(rss)
            print("%8d %14.1f %10.2f %10.1f %6d" % (size, rss, seconds, size / seconds, puts))
        print("peak RSS ratio %d MB / %d MB: %.3f" % (options.large_mb, options.small_mb, peaks[1] / peaks[0]))
    finally:
        subprocess.run(["gpgconf", "--homedir", os.path.join(work, "gpg"), "--kill", "gpg-agent"], check=False)
        if options.keep:
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
