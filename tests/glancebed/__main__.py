"""Start or stop a Glance of tests/glancebed outside pytest (for molecule scenarios and by hand).

    python -m glancebed start DIR     # prepares DIR, starts Glance, prints its endpoint
    python -m glancebed stop DIR      # stops the Glance started in DIR (by the PID recorded there)

PYTHONPATH must hold tests/ (scripts/env.sh sets it).
"""

import argparse
import os
import signal
import sys
import time

from .server import GlanceError, GlanceServer


def start(directory):
    server = GlanceServer(directory)
    server.prepare()
    server.start()
    server.wait_ready()
    with open(os.path.join(server.root, "gunicorn.pid"), "w") as handle:
        handle.write("%d\n" % server.process.pid)
    with open(os.path.join(server.root, "endpoint"), "w") as handle:
        handle.write(server.endpoint + "\n")
    print(server.endpoint)


def running(pid):
    """Whether a process runs (a zombie has ended: nobody may reap gunicorn once ``start`` has exited)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop(directory):
    """Stop the process group whose leader's PID ``start`` recorded; nothing when there is none."""
    pid_file = os.path.join(os.path.abspath(directory), "gunicorn.pid")
    if not os.path.exists(pid_file):
        return
    with open(pid_file) as handle:
        pid = int(handle.read())
    if running(pid):
        os.killpg(pid, signal.SIGINT)
        deadline = time.monotonic() + 10
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if running(pid):
            os.killpg(pid, signal.SIGKILL)
    os.remove(pid_file)


def main():
    parser = argparse.ArgumentParser(prog="python -m glancebed", description="A real Glance on 127.0.0.1.")
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("directory", help="the Glance's own directory (config, database, store, logs)")
    options = parser.parse_args()
    try:
        (start if options.action == "start" else stop)(options.directory)
    except GlanceError as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main()
