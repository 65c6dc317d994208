"""A stand-in for a Fuel 9.x master's Nailgun and Keystone APIs on 127.0.0.1, for the fuel inventory tests.

Nailgun cannot run here, so this serves the calls the inventory makes, on their real paths and with the JSON
shapes Nailgun answers (see the reference on Fuel's data, section 3), built from sample astute.yaml files:

- GET  /api/v1/version                                  {"release", "api", "auth_required", ...}
- POST /keystone/v2.0/tokens                            {"access": {"token": {"id", "expires"}, ...}}
- GET  /api/v1/clusters                                 [{"id", "name", "status", ...}]
- GET  /api/v1/nodes?cluster_id=ID                      [{"id", "cluster", "hostname", "roles", "ip", ...}]
- GET  /api/v1/transactions?cluster_id=ID               [{"id", "uuid", "name", "status", "cluster"}]
- GET  /api/v1/transactions/ID/deployment_info          9.0: {uid: node}; 9.1+: {"common": {...}, "nodes": {...}}

Every /api/v1 call but version needs the X-Auth-Token that Keystone gave. The stub records each request.
"""

import glob
import json
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

USER, TENANT = "admin", "admin"
# The environment's transactions, newest last: only the newest *successful deployment* holds the data.
TRANSACTIONS = ((21, "provision", "ready"), (22, "deployment", "ready"), (23, "deployment", "error"))
DEPLOYED = 22


def read_samples(folder):
    """Return {uid: node data} of the astute.yaml files in a sample folder."""
    nodes = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
        with open(path) as handle:
            data = yaml.safe_load(handle)
        nodes[data["uid"]] = data
    return nodes


def node_record(data, cluster_id):
    """Return Nailgun's record of a node (GET /api/v1/nodes) for its deployment data."""
    bridge = data["network_scheme"]["roles"]["admin/pxe"]
    admin_ip = data["network_scheme"]["endpoints"][bridge]["IP"][0].split("/")[0]
    return {
        "id": int(data["uid"]),
        "cluster": cluster_id,
        "name": data["user_node_name"],
        "hostname": data["fqdn"].split(".")[0],
        "fqdn": data["fqdn"],
        "roles": sorted(role.replace("primary-", "") for role in data["roles"]),
        "pending_roles": [],
        "status": "ready",
        "online": True,
        "ip": admin_ip,
        "mac": "52:54:00:00:00:%02x" % int(data["uid"]),
        "group_id": 1,
        "pending_addition": False,
        "pending_deletion": False,
        "error_type": None,
        "progress": 100,
    }


# Nailgun serializes a pseudo-node for the Fuel master with the nodes; consumers skip it.
MASTER = {"uid": "master", "roles": ["master"], "fqdn": "fuel.domain.tld"}


def deployment_info(nodes, split):
    """Return a transaction's deployment_info: 9.0's {uid: node}, or with split 9.1+'s common and per-node parts."""
    if not split:
        return dict(nodes, master=MASTER)
    first = next(iter(nodes.values()))
    common = {key: value for key, value in first.items() if all(node.get(key) == value for node in nodes.values())}
    parts = {uid: {k: v for k, v in node.items() if k not in common} for uid, node in nodes.items()}
    return {"common": common, "nodes": dict(parts, master=MASTER)}


class NailgunStub:
    """Nailgun and Keystone for one environment, on a free port of 127.0.0.1.

    Args:
        cluster_id: the environment's id.
        nodes: {uid: deployment data} of the environment's last successful deployment.
        password: the password Keystone accepts for user admin, tenant admin.
        split: answer deployment_info in the 9.1+ shape instead of the 9.0 one.
        other_clusters: more environments the master lists (ids), without nodes.
        pending_deletion: uids of nodes Nailgun marks as being deleted.
        undeployed: extra node records (as node_record makes them) added since the last deployment.
    """

    def __init__(
        self, cluster_id, nodes, password, *, split=False, other_clusters=(), pending_deletion=(), undeployed=()
    ):
        self.cluster_id = cluster_id
        self.nodes = nodes
        self.password = password
        self.split = split
        self.clusters = [cluster_id, *other_clusters]
        self.records = [
            dict(node_record(data, cluster_id), pending_deletion=uid in pending_deletion) for uid, data in nodes.items()
        ] + list(undeployed)
        self.tokens = set()
        self.requests = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method, path, query, token, body):
        """Return (HTTP status, JSON answer) for one request."""
        if method == "POST" and path == "/keystone/v2.0/tokens":
            return self._token(body)
        if path == "/api/v1/version":
            return 200, {"release": "9.0", "api": "1", "auth_required": True, "feature_groups": []}
        if token not in self.tokens:
            return 401, {"message": "Authentication required"}
        routes = {
            "/api/v1/clusters": self._clusters,
            "/api/v1/nodes": self._nodes,
            "/api/v1/transactions": self._transactions,
            "/api/v1/transactions/%d/deployment_info" % DEPLOYED: self._deployment_info,
        }
        if path not in routes:
            return 404, {"message": "Not found"}
        return 200, routes[path](int(query.get("cluster_id", ["0"])[0]))

    def _clusters(self, _cluster_id):
        return [
            {
                "id": c,
                "name": "env-%d" % c,
                "mode": "ha_compact",
                "status": "operational",
                "net_provider": "neutron",
                "release_id": 2,
                "fuel_version": "9.0",
            }
            for c in self.clusters
        ]

    def _nodes(self, cluster_id):
        return [record for record in self.records if record["cluster"] == cluster_id]

    def _transactions(self, cluster_id):
        if cluster_id != self.cluster_id:
            return []
        return [
            {"id": tid, "uuid": str(uuid.uuid4()), "name": name, "status": status, "cluster": cluster_id}
            for tid, name, status in TRANSACTIONS
        ]

    def _deployment_info(self, _cluster_id):
        return deployment_info(self.nodes, self.split)

    def _token(self, body):
        credentials = body.get("auth", {})
        password = credentials.get("passwordCredentials", {})
        if (credentials.get("tenantName"), password.get("username"), password.get("password")) != (
            TENANT,
            USER,
            self.password,
        ):
            return 401, {"error": {"code": 401, "title": "Unauthorized", "message": "Invalid user / password"}}
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return 200, {
            "access": {
                "token": {"id": token, "expires": "2030-01-01T00:00:00Z"},
                "user": {"name": USER},
                "serviceCatalog": [],
            }
        }

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._reply(None)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self._reply(json.loads(self.rfile.read(length) or b"{}"))

            def _reply(self, body):
                parts = urlsplit(self.path)
                token = self.headers.get("X-Auth-Token")
                stub.requests.append((self.command, self.path, token, body))
                status, answer = stub.answer(self.command, parts.path, parse_qs(parts.query), token, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler
