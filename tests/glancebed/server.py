"""One real glance-api: the PyPI release installed by scripts/setup-glance.sh, run under gunicorn on
127.0.0.1, with sqlite, a file store and no Keystone (the paste pipeline without authtoken).

    server = GlanceServer(workdir)      # config files and database under workdir
    server.prepare()                    # write the config, create the database (about 1.5 s)
    server.start()                      # gunicorn in its own process group
    server.wait_ready()                 # until GET /healthcheck answers (about 1.5 s)
    server.cloud                        # openstacksdk connection settings for it
    server.requests()                   # the access log: what clients sent
    server.stop()                       # the process group it started, by PID

Glance's own config notes (see shared reference feasibility §4): glance-api cannot run standalone
any more (WSGI only); the unauthenticated context has no roles, so the policy makes every context
admin; gunicorn gets ``--no-control-socket`` so that it writes nothing in the home directory.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GLANCE_VENV = os.path.join(ROOT, ".build", "glance-venv")
# One access-log line per request: method, status, request Content-Length (- when none), path (under /v2).
ACCESS_LOG_FORMAT = "%(m)s %(s)s %({content-length}i)s %(U)s"

API_CONF = """\
[DEFAULT]
enabled_backends = fs:file
image_cache_dir = {root}/cache
log_file = {root}/glance-api.log
[database]
connection = sqlite:///{root}/glance.sqlite
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {root}/images/
[os_glance_staging_store]
filesystem_store_datadir = {root}/staging/
[os_glance_tasks_store]
filesystem_store_datadir = {root}/tasks/
[oslo_concurrency]
lock_path = {root}/locks
[paste_deploy]
flavor =
config_file = {root}/etc/glance-api-paste.ini
[oslo_policy]
policy_file = {root}/etc/policy.yaml
enforce_scope = false
"""
POLICY = '"context_is_admin": "@"\n'


class GlanceError(Exception):
    """Glance could not be installed, prepared or started; the message says what to do."""


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GlanceServer:
    """A glance-api process with its own config, database and store under ``workdir``."""

    def __init__(self, workdir, port=None):
        self.root = os.path.abspath(str(workdir))
        self.port = port or free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.process = None

    @property
    def cloud(self):
        """openstacksdk settings (a clouds.yaml entry, or the module's ``cloud`` option) for this Glance."""
        return {"auth_type": "none", "auth": {"endpoint": self.endpoint}}

    @property
    def access_log(self):
        return os.path.join(self.root, "access.log")

    def prepare(self):
        """Write the config files and create the database; Glance is not started."""
        if not os.path.exists(os.path.join(GLANCE_VENV, "bin", "gunicorn")):
            raise GlanceError("Glance is not installed in %s: run scripts/setup-glance.sh" % GLANCE_VENV)
        etc = os.path.join(self.root, "etc")
        for sub in ("etc", "images", "staging", "tasks", "cache", "locks"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        with open(os.path.join(etc, "glance-api.conf"), "w") as conf:
            conf.write(API_CONF.format(root=self.root))
        with open(os.path.join(etc, "policy.yaml"), "w") as policy:
            policy.write(POLICY)
        with open(os.path.join(GLANCE_VENV, "etc", "glance", "glance-api-paste.ini")) as shipped:
            paste = shipped.read().replace("/etc/glance/healthcheck_disable", os.path.join(self.root, "disabled"))
        with open(os.path.join(etc, "glance-api-paste.ini"), "w") as conf:
            conf.write(paste)
        self._run(["glance-manage", "--config-file", os.path.join(etc, "glance-api.conf"), "db_sync"])

    def _run(self, argv):
        command = [os.path.join(GLANCE_VENV, "bin", argv[0]), *argv[1:]]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise GlanceError("%s failed (%d): %s" % (" ".join(argv), done.returncode, done.stderr[-2000:]))

    def start(self):
        """Start gunicorn in a new process group (so that stop() ends its workers too)."""
        command = [
            os.path.join(GLANCE_VENV, "bin", "gunicorn"),
            "--bind",
            "127.0.0.1:%d" % self.port,
            "--workers",
            "1",
            "--threads",
            "4",
            "--timeout",
            "300",
            "--graceful-timeout",
            "5",
            "--no-control-socket",
            "--access-logfile",
            self.access_log,
            "--access-logformat",
            ACCESS_LOG_FORMAT,
            "glance.wsgi.api:application",
        ]
        env = dict(os.environ, OS_GLANCE_CONFIG_DIR=os.path.join(self.root, "etc"))
        with open(os.path.join(self.root, "gunicorn.log"), "ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root
            )

    def wait_ready(self, timeout=60):
        """Wait until Glance answers its health check."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GlanceError("Glance exited with %s; see %s/gunicorn.log" % (self.process.returncode, self.root))
            try:
                with urllib.request.urlopen(self.endpoint + "/healthcheck", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise GlanceError(
            "Glance at %s not ready after %d s; see %s/gunicorn.log" % (self.endpoint, timeout, self.root)
        )

    def stop(self):
        """Quick shutdown of the gunicorn process group this object started; SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def requests(self):
        """Return the requests Glance served so far, oldest first, as dicts of method, path, status and
        ``sent`` (the request body's Content-Length, 0 when none)."""
        if not os.path.exists(self.access_log):
            return []
        self._settle_log()
        entries = []
        with open(self.access_log) as log:
            for line in log:
                method, status, length, path = line.rstrip("\n").split(" ", 3)
                entries.append(dict(method=method, path=path, status=int(status), sent=int(length.strip('"-') or 0)))
        return entries

    def _settle_log(self, quiet=0.3, timeout=3.0):
        """gunicorn logs a request after answering it: wait until the access log has stopped growing."""
        deadline, size, since = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            now = os.path.getsize(self.access_log)
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.05)

    def uploads(self):
        """Return the image data uploads Glance served so far (PUT /v2/images/ID/file)."""
        return [r for r in self.requests() if r["method"] == "PUT" and r["path"].endswith("/file")]
