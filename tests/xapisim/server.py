"""HTTP front end (XML-RPC on ``/`` and ``/RPC2``, ``PUT /import_raw_vdi``, ``/_sim/*`` controls) and the
``Simulator`` object that tests and the CLI use."""

import glob
import html
import json
import os
import re
import shlex
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

from .api import XAPI
from .db import Failure
from .dom0 import PLUGIN_DIR, XAPI_SOCKET, Dom0
from .scenario import ScenarioError, load_scenario

CHUNK = 64 * 1024
# The tags ocaml-rpc's XML-RPC parser knows (ocaml-rpc src/lib/xmlrpc.ml:330-373); <base64> is not one of them
# before rpclib 7.1.0 (XenServer 7.x, XCP-ng 8.2 builds with xs-opam < 6.35.7) and, from 7.1.0 on, its decoder
# refuses the newlines Python's client always wraps base64 in (ocaml-base64 src/base64.ml:239-262): either way
# the parse fails.
XMLRPC_TAGS = frozenset(
    "methodCall methodName params param value string int i4 i8 boolean double dateTime.iso8601 nil array data struct "
    "member name".split()
)
_TAG = re.compile(rb"<([A-Za-z_][-\w.:]*)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
INTERNAL_ERROR_PAGE = (
    "<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a while and try "
    "again. If the problem persists, please contact your support representative.<h1> Additional information </h1>"
    "%s</body></html>"
)


def parse_call(body):
    """``(method, params)`` of an XML-RPC request body as xapi's API server reads it (api_server.ml:121); raises
    ValueError where xapi's parser raises, which it answers with HTTP 500 (api_server.ml:148-159,
    http_svr.ml:539-565): an unknown tag such as ``<base64>``, a number that is not one, bad XML."""
    for tag in _TAG.findall(body):
        if tag.decode(errors="replace") not in XMLRPC_TAGS:
            raise ValueError('Xmlrpc.Parse_error("open_tag(%s)")' % tag.decode(errors="replace"))
    try:
        params, method = xmlrpc.client.loads(body)
    except Exception as exc:  # expat's, int()'s, float()'s ...
        raise ValueError(str(exc)) from None
    if method is None:
        raise ValueError("not a methodCall")
    return method, params


def _in_own_netns():
    """True when this process runs in a named network namespace (``ip netns``), so that flushing routes or
    running Dom0 boot hooks as is cannot touch the machine's own network. (PID 1's namespace link may not be
    readable, so compare with the namespaces ``ip netns`` made instead.)"""
    try:
        own = os.stat("/proc/self/ns/net")
        named = [os.stat(os.path.join("/run/netns", name)) for name in os.listdir("/run/netns")]
    except OSError:
        return False
    return any((ns.st_dev, ns.st_ino) == (own.st_dev, own.st_ino) for ns in named)


class _Tracked(socketserver.ThreadingMixIn):
    """A threading server that keeps its open connections, so that ``stop`` can cut them."""

    daemon_threads = True
    preauth = False

    def process_request(self, request, client_address):
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        """Dropped connections and failed TLS handshakes are normal here; anything else is a bug."""
        if not isinstance(sys.exc_info()[1], OSError):
            traceback.print_exc()
        elif self.sim.verbose:
            sys.stderr.write("xapisim: connection from %s: %s\n" % (client_address or "unix", sys.exc_info()[1]))


class _Server(_Tracked, HTTPServer):
    def __init__(self, address, sim):
        self.sim, self.connections = sim, set()
        super().__init__(address, _Handler)


class _UnixServer(_Tracked, socketserver.UnixStreamServer):
    """XML-RPC on xapi's Unix socket (``/var/lib/xcp/xapi`` in Dom0), where every client is root."""

    preauth = True

    def __init__(self, path, sim):
        self.sim, self.connections = sim, set()
        if os.path.exists(path):
            os.unlink(path)
        directory = os.open(os.path.dirname(path), os.O_RDONLY)
        try:  # bind through the directory: a socket path may not be longer than 107 bytes
            super().__init__("/proc/self/fd/%d/%s" % (directory, os.path.basename(path)), _UnixHandler)
        finally:
            os.close(directory)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    server_version = "xapisim"
    timeout = 120
    note = ""

    def log_request(self, code="-", size="-"):
        self.log_message('"%s" %s %s', self.requestline, code, self.note)

    def log_message(self, fmt, *args):
        if self.server.sim.verbose:
            sys.stderr.write("%s %s\n" % (self.client_address[0] if self.client_address else "unix", fmt % args))

    def _reply(self, code, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _split(self):
        path, _, query = self.path.partition("?")
        return path, {k: v[-1] for k, v in parse_qs(query).items()}

    def do_GET(self):
        path, _ = self._split()
        sim = self.server.sim
        if path == "/_sim/health":
            return self._reply(200, "ok")
        if path in ("/_sim/counts", "/_sim/times", "/_sim/state"):
            data = {"/_sim/counts": sim.counts, "/_sim/times": sim.times, "/_sim/state": sim.state}[path]()
            return self._reply(200, json.dumps(data, sort_keys=True), "application/json")
        self._reply(404, "not found\n")

    def do_POST(self):
        path, query = self._split()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path.startswith("/_sim/"):
            return self._control(path, query)
        if path not in ("/", "/RPC2"):
            return self._reply(404, "not found\n")
        try:
            method, params = parse_call(body)
        except ValueError as exc:
            return self._internal_error(str(exc))
        api, local = self.server.sim.api, self._local_address()
        try:
            result = {"Status": "Success", "Value": api.call(method, params, local, self.server.preauth)}
        except Failure as exc:
            result = {"Status": "Failure", "ErrorDescription": exc.details}
        except Exception as exc:  # a simulator bug: answer like xapi does rather than dropping the connection
            traceback.print_exc()
            result = {"Status": "Failure", "ErrorDescription": ["INTERNAL_ERROR", repr(exc)]}
        self.note = "%s %s" % (method, result.get("ErrorDescription", ["OK"])[0])
        # ocaml-rpc drops the bytes XML cannot hold from strings (src/lib/xmlrpc.ml:52-66)
        response = _CONTROL.sub("", xmlrpc.client.dumps((result,), methodresponse=True, allow_none=True))
        self._reply(200, response, "text/xml")

    def _internal_error(self, detail):
        """Http_svr's answer to an exception in a handler (http_svr.ml:145-217): 500, HTML, and the connection
        closed."""
        self.close_connection = True
        body = (INTERNAL_ERROR_PAGE % html.escape(detail)).encode()
        self.note = "HTTP 500: %s" % detail
        self.send_response(500, "Internal Error")
        for header, value in (("Content-Type", "text/html"), ("Cache-Control", "no-cache, no-store")):
            self.send_header(header, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _local_address(self):
        name = self.connection.getsockname()
        return name[0] if isinstance(name, tuple) else "unix"

    def _control(self, path, query):
        sim = self.server.sim
        actions = {
            "/_sim/reset_counts": sim.reset_counts,
            "/_sim/expire_sessions": sim.expire_sessions,
            "/_sim/expire_after": lambda: sim.expire_sessions_after(int(query.get("n", "0"))),
            "/_sim/expire_at": lambda: sim.expire_sessions_at(query.get("method", "")),
            "/_sim/always_expire": lambda: sim.always_expire(query.get("on", "1") not in ("0", "false")),
            "/_sim/reboot": sim.reboot,
            "/_sim/load": lambda: sim.load(query.get("scenario", "")),
            "/_sim/cut_upload": lambda: sim.cut_next_upload(int(query.get("after", "0"))),
        }
        if path not in actions:
            return self._reply(404, "not found\n")
        try:
            result = actions[path]()
        except (ValueError, ScenarioError) as exc:
            return self._reply(400, "%s\n" % exc)
        self._reply(200, json.dumps(result if result is not None else "ok"), "application/json")

    def do_PUT(self):
        path, query = self._split()
        self.close_connection = True  # until the body has been consumed
        if path != "/import_raw_vdi":
            return self._reply(404, "not found\n")
        api = self.server.sim.api
        api.count("PUT /import_raw_vdi")
        try:
            vdi, dest, created, task = api.begin_import(query)
        except Failure as exc:
            code = {"SESSION_INVALID": 403, "HANDLE_INVALID": 404}.get(exc.details[0], 400)
            return self._reply(code, "%s\n" % exc.details)
        size, error = self._receive(dest, self.server.sim.take_cut())
        api.end_import(vdi, task, created, size, error)
        self.note = error or "%d bytes" % size
        if not error:
            self.close_connection = False
            self._reply(200, "")

    def _receive(self, dest, cut=None):
        """Stream the body into ``dest`` (constant memory); return ``(bytes written, error or None)``.

        With ``cut`` (a number of bytes), the connection is reset once that much has arrived, as when xapi
        restarts or the network breaks mid-upload."""
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length")
        if not chunked and length is None:
            return 0, "Content-Length or chunked transfer encoding required"
        total = 0
        try:
            with open(dest, "wb") as out:
                for piece in self._chunked() if chunked else self._sized(int(length)):
                    out.write(piece)
                    total += len(piece)
                    if cut is not None and total >= cut:
                        self._reset()
                        raise ValueError("the simulator cut the connection (/_sim/cut_upload)")
        except (OSError, ValueError) as exc:
            return total, "upload interrupted after %d bytes: %s" % (total, exc)
        return total, None

    def _reset(self):
        """Make the end of this request close the connection with a TCP reset (SO_LINGER 0)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _sized(self, remaining):
        while remaining > 0:
            piece = self.rfile.read(min(CHUNK, remaining))
            if not piece:
                raise ValueError("client closed the connection")
            remaining -= len(piece)
            yield piece

    def _chunked(self):
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise ValueError("truncated chunk header")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            yield from self._sized(size)
            self.rfile.readline(1024)


class _UnixHandler(_Handler):
    disable_nagle_algorithm = False  # not a TCP socket


class Simulator:
    """A simulated xapi seeded from a scenario file, served over HTTP(S) by ``start()``."""

    def __init__(
        self,
        scenario_path,
        *,
        root=None,
        bin_dirs=(),
        dom0_pythons=None,
        himn_addresses=("169.254.0.1",),
        tls=None,
        netns=False,
        verbose=False,
    ):
        """``root``: Dom0's file root; ``bin_dirs``: stand-in directories put first on the plugins' PATH (the
        simulator's own ``xe`` comes after them); ``dom0_pythons``: where scripts/setup-pythons.sh put Dom0's
        Pythons (default ``<repo>/.build/dom0-python``)."""
        self.scenario = load_scenario(scenario_path)
        self._own_root = root is None
        self.root = os.path.abspath(root or tempfile.mkdtemp(prefix="xapisim-"))
        self.dom0 = Dom0(self.root, bin_dirs, dom0_pythons)
        self.plugin_dir = self.dom0.local(PLUGIN_DIR)
        self.api = XAPI(self.scenario, self.dom0, himn_addresses)
        self.db = self.api.db
        self.tls, self.netns, self.verbose = tls, netns, verbose
        self.url = self._server = None
        self._servers, self._cut, self._cut_lock = [], None, threading.Lock()

    def module_args(self, **extra):
        """A module's connection options for this simulator (its scenario's credentials), with the compute VM's
        UUID when the scenario has one, and ``extra`` over them."""
        creds = self.scenario["credentials"]
        args = dict(url=self.url, username=creds["username"], password=creds["password"])
        vm = self.scenario.get("vms", {}).get("compute")
        if vm:
            args["vm_uuid"] = vm["uuid"]
        args.update(extra)
        return args

    def start(self, host="127.0.0.1", port=0):
        """Serve HTTP(S) and Dom0's Unix socket in daemon threads; return the URL (``https://`` when
        ``tls=(certfile, keyfile)``). As root, Dom0's mount namespace is made first."""
        self.dom0.start()
        self._server = _Server((host, port), self)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        for server in (self._server, _UnixServer(self.dom0.local(XAPI_SOCKET), self)):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="xapisim", daemon=True
            )
            thread.start()
            self._servers.append((server, thread))
        bound = self._server.server_address
        self.url = "%s://%s:%d" % (
            "https" if self.tls else "http",
            host if host not in ("", "0.0.0.0") else "127.0.0.1",
            bound[1],
        )
        return self.url

    def stop(self):
        for server, thread in self._servers:
            server.shutdown()
            for conn in server.connections.copy():
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            server.server_close()
            thread.join(5)
        self._servers, self._server = [], None
        self.dom0.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        if not self._server:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def counts(self):
        with self.api.lock:
            return dict(self.api.counts)

    def times(self):
        """The first and the last wall-clock time of each call made since the counts were reset."""
        with self.api.lock:
            return dict(self.api.times)

    def reset_counts(self):
        with self.api.lock:
            self.api.counts.clear()
            self.api.times.clear()

    def expire_sessions(self):
        """Every current session becomes invalid (SESSION_INVALID on its next use)."""
        self.api.expire_sessions()

    def expire_sessions_after(self, n_calls):
        """The next ``n_calls`` XML-RPC calls succeed; then the sessions of that moment are dropped once."""
        with self.api.lock:
            self.api.expire_after = int(n_calls)

    def expire_sessions_at(self, method):
        """The sessions of the moment the next ``method`` call arrives (``Async.pool_update.introduce``, say) are
        dropped, before that call is checked: the call meets SESSION_INVALID in the middle of whatever made it."""
        with self.api.lock:
            self.api.expire_at = method or None

    def always_expire(self, flag=True):
        """While set, current sessions are dropped and every new one is invalid at once (the real client
        re-logs in 3 times, then raises ``xmlrpc.client.Fault``)."""
        with self.api.lock:
            self.api.always_expire = bool(flag)
            if flag:
                self.api.expire_sessions()

    def load(self, scenario_path):
        """Become the host of another scenario file, as if xapi restarted on it: every object is seeded again
        (sessions, tasks, VDIs and updates applied through the API are gone); the file root, the plugins in it
        and the counters stay. Raises ScenarioError for a bad file (then nothing changes)."""
        if not scenario_path:
            raise ValueError("give scenario=PATH")
        scenario = load_scenario(scenario_path)
        old = self.api
        api = XAPI(scenario, self.dom0, old.himn_addresses)
        with old.lock:
            api.counts.update(old.counts)
            api.times.update(old.times)
            self.scenario, self.api, self.db = scenario, api, api.db

    def cut_next_upload(self, after_bytes):
        """The next ``PUT /import_raw_vdi`` has its connection reset once ``after_bytes`` bytes have arrived."""
        if after_bytes < 1:
            raise ValueError("after must be a positive number of bytes")
        with self._cut_lock:
            self._cut = after_bytes

    def take_cut(self):
        with self._cut_lock:
            cut, self._cut = self._cut, None
            return cut

    def vdi_count(self):
        with self.api.lock:
            return len(self.db.tables["VDI"])

    def state(self):
        return self.api.state()

    def reboot(self):
        """Simulate a Dom0 reboot and return ``[[argv, returncode], ...]`` for the boot hooks run.

        Sessions are dropped, ``<root>/var/volatile/`` is emptied, (with ``netns=True`` only) the namespace's
        static/boot routes are flushed, then every ``<root>/etc/udev/rules.d/*.rules`` line for
        ``KERNEL=="xenapi"`` has its ``RUN+="..."`` command run (bridge re-created), in Dom0's file system (its
        mount namespace, as root). The command path is taken relative to ``root`` unless ``netns=True``, where an
        absolute path is run as is. ``netns=True`` is ignored (with a warning) when the process is in the
        machine's own network namespace.
        """
        in_netns = self.netns and _in_own_netns()
        if self.netns and not in_netns:
            sys.stderr.write("xapisim: netns=True but not in a network namespace of its own: routes kept\n")
        self.api.expire_sessions()
        with self.api.lock:
            booted = "%d" % time.time()
            self.db.raw("host", self.api.local_host)["other_config"].update(boot_time=booted, agent_start_time=booted)
        volatile = os.path.join(self.root, "var", "volatile")
        for entry in os.listdir(volatile) if os.path.isdir(volatile) else []:
            path = os.path.join(volatile, entry)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        if in_netns:
            for proto in ("static", "boot"):
                subprocess.run(["ip", "route", "flush", "proto", proto], capture_output=True, check=False)
        hooks = []
        for rules in sorted(glob.glob(os.path.join(self.root, "etc", "udev", "rules.d", "*.rules"))):
            with open(rules) as f:
                commands = [
                    m.group(1)
                    for line in f
                    if 'KERNEL=="xenapi"' in line
                    for m in [re.search(r'RUN\+="([^"]+)"', line)]
                    if m
                ]
            for command in commands:
                argv = shlex.split(command)
                if not (in_netns and os.path.isabs(argv[0])):
                    argv[0] = os.path.join(self.root, argv[0].lstrip("/"))
                env = dict(os.environ, XAPISIM_ROOT=self.root, ACTION="add", INTERFACE="xenapi")
                try:
                    code = subprocess.run(
                        argv,
                        env=env,
                        capture_output=True,
                        timeout=60,
                        check=False,
                        preexec_fn=self.dom0.enter(),
                    ).returncode
                except (OSError, subprocess.TimeoutExpired):
                    code = 127
                hooks.append([argv, code])
        return hooks
