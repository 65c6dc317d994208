"""``python -m xapisim --scenario FILE ...``: run the simulator in the foreground until SIGTERM/SIGINT."""

import argparse
import os
import signal
import sys
import threading

from .scenario import ScenarioError
from .server import Simulator


def _write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text + "\n")
    os.replace(path + ".tmp", path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m xapisim", description=__doc__)
    parser.add_argument("--scenario", required=True, help="scenario YAML file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--root", help="simulated Dom0 file system root (default: a temporary directory)")
    parser.add_argument(
        "--bin-dir", action="append", default=[], help="a directory of stand-ins put first on the plugins' PATH"
    )
    parser.add_argument("--dom0-pythons", help="where scripts/setup-pythons.sh put Dom0's Pythons")
    parser.add_argument("--himn-address", action="extend", nargs="+", help="server address(es) served as the HIMN")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--netns", action="store_true", help="running in a network namespace: reboot flushes routes")
    parser.add_argument("--port-file", help="write the bound port here")
    parser.add_argument("--pid-file", help="write this process id here")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    try:
        sim = Simulator(
            args.scenario,
            root=args.root,
            bin_dirs=args.bin_dir,
            dom0_pythons=args.dom0_pythons,
            himn_addresses=args.himn_address or ("169.254.0.1",),
            tls=(args.tls_cert, args.tls_key) if args.tls_cert else None,
            netns=args.netns,
            verbose=True,
        )
    except ScenarioError as exc:
        sys.stderr.write("xapisim: %s\n" % exc)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    url = sim.start(args.host, args.port)
    written = [
        (path, text)
        for path, text in ((args.port_file, url.rsplit(":", 1)[1]), (args.pid_file, str(os.getpid())))
        if path
    ]
    for path, text in written:
        _write(path, text)
    sys.stderr.write("xapisim: serving %s on %s (root %s)\n" % (args.scenario, url, sim.root))
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for path, _ in written:
            os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
