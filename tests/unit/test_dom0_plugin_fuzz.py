"""Property-based fuzz of every Dom0 plugin function under Dom0's Pythons (2.7 and 3.6).

Whoever holds a pool-admin session can call the plugin, which runs as root in Dom0. For random and hostile
parameters (wrong JSON types, unknown keys, strings that are paths, shell, inet_aton forms, lone surrogates,
non-JSON text), every call must end in the plugin's own refusal (a PluginError with an ASCII message) or a JSON
answer - never another exception (what xapi would hand back as a traceback) - and must write nothing outside the
function's whitelist. A refusal changes nothing at all; a check-mode answer changes nothing at all.

Hypothesis (pinned in tests/requirements.txt) generates the calls in this Python; ``dom0fuzz_child.py`` runs them
with the plugin loaded once under Dom0's Python, inside a throwaway network namespace (real ``ip`` and
``iptables``, so routes and rules change only there) with a scratch file root (XENSERVER_OPENSTACK_ROOT) seeded
with Dom0's files and bait (a distribution logrotate file, a symlink out of the root). The example budget is fixed
(XO_FUZZ_EXAMPLES, default 40 per function and Python) and derandomized: CI runs the same cases every time; each
test prints how many cases it tried.
"""

import hashlib
import ipaddress
import json
import os
import select
import subprocess
from collections import Counter

import pytest
from dom0harness import CHAIN, INTERPRETERS, PLUGIN, TESTS, firewalled_dom0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("XO_FUZZ_EXAMPLES", "40"))
CHILD = os.path.join(TESTS, "dom0fuzz_child.py")
HIMN = ipaddress.IPv4Network("169.254.0.0/16")
BATCHABLE = ("cron_job", "service_restart", "iptables_chain", "modprobe_unblacklist", "conntrackd_config")
FUNCTIONS = ("version", "route_list", "route_ensure", "route_remove", *BATCHABLE, "batch")

# What each function may write (paths under the root); every function may take the lock and update the record of
# the files the plugin created.
COMMON = {"etc/sysconfig/xenserver-openstack-routes.json.lock", "etc/sysconfig/xenserver-openstack-files.json"}
ROUTE_FILES = {"etc/sysconfig/xenserver-openstack-routes.json", "etc/udev/rules.d/90-xenserver-openstack-routes.rules"}
WHITELIST = {
    "version": set(),
    "route_list": set(),
    "route_ensure": ROUTE_FILES,
    "route_remove": ROUTE_FILES,
    "cron_job": {"etc/cron.d/xenserver-openstack-console-logs"},
    "service_restart": set(),
    "iptables_chain": {"etc/sysconfig/iptables"},
    "modprobe_unblacklist": {"etc/modprobe.d/blacklist-bridge.conf", "etc/modprobe.d/dist.conf"},
    "conntrackd_config": {
        "etc/conntrackd/conntrackd.conf",
        "etc/conntrackd/conntrackd.conf.back",
        "etc/conntrackd/.xenserver-openstack-restart-pending",
        "etc/logrotate.d/conntrackd",
    },
}
WHITELIST["batch"] = set().union(*(WHITELIST[name] for name in BATCHABLE))
KERNEL = ("route_ensure", "route_remove", "iptables_chain", "batch")  # the functions that change routes or rules

SEEDED = {
    "etc/logrotate.d/syslog": "/var/log/messages {\n\tsharedscripts\n}\n",
    "etc/cron.d/0hourly": "01 * * * * root run-parts /etc/cron.hourly\n",
    "etc/modprobe.d/blacklist-bridge.conf": "# Open vSwitch is the network backend\nblacklist bridge\n",
    "etc/modprobe.d/dist.conf": "alias bridge off\noptions bonding max_bonds=0\n",
    "etc/conntrackd/conntrackd.conf": "# conntrack-tools' conntrackd.conf\nSync {\n}\n",
    "../outside/secret": "precious\n",
}

# --- strategies --------------------------------------------------------------------------------------------------

HOSTILE = [
    "",
    " ",
    "0x0a.0.0.0/8",
    "010.0.0.0/8",
    "10.0.0.0/08",
    "10.0.0.0/8 ",
    " 10.0.0.0/8",
    "10.0.0.0/8\n",
    "10.1/16",
    "\uff11\uff10.0.0.0/8",
    "10.0.0.0/+8",
    "0.0.0.0/0",
    "0.0.0.0/1",
    "128.0.0.0/1",
    "169.254.0.0/16",
    "169.254.0.1",
    "169.254.0.0",
    "169.254.255.255",
    "192.0.2.0/24",
    "192.0.2.10",
    "127.0.0.0/8",
    "255.255.255.255/32",
    "../../etc/passwd",
    "/etc/passwd",
    "/etc/logrotate.d/syslog",
    "/etc/logrotate.d/link",
    "conntrackd; reboot",
    "$(touch /tmp/owned)",
    "`id`",
    "\x00",
    "\ud800",
    "caf\u00e9",
    "\u2028",
    "* * * * * root rm -rf /",
    "*/5 * * * *",
    '--comment "two words"',
    "50M\n\tpostrotate\n\t\ttouch /x\n\tendscript",
    "1e3",
    "NaN",
    "true",
    "present",
    "absent",
    "bridge",
    "conntrackd",
    "console-logs",
    "tcp",
]
TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=24), st.from_regex(r"\A[0-9./ ]{1,18}\Z"))
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), TEXT
)
JSON = st.recursive(
    SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=8
)
KEYS = st.one_of(
    st.sampled_from(
        ["check", "path", "content", "mode", "state", "routes", "networks", "calls", "params", "function", "rules"]
    ),
    TEXT,
)


def canonical_network(address, prefix):
    return str(ipaddress.IPv4Network((address, prefix), strict=False))


POOL = ["198.18.0.0/24", "198.18.1.0/24", "10.0.0.0/8", "198.51.100.0/24", "203.0.113.128/25", "172.16.0.0/12"]
NETWORK = st.one_of(
    st.sampled_from(POOL),
    st.builds(canonical_network, st.integers(0, 2**32 - 1), st.integers(0, 32)),
    TEXT,
)
GATEWAY = st.one_of(
    st.sampled_from(["169.254.0.2", "169.254.0.3", "169.254.0.1", "169.254.0.0", "169.254.255.255"]),
    st.builds("169.254.{}.{}".format, st.integers(0, 255), st.integers(0, 255)),
    TEXT,
)
STATE = st.sampled_from(["present", "absent"])


def with_check(required=None, **optional):
    return st.fixed_dictionaries(required or {}, optional=dict(optional, check=st.booleans()))


VALID = {
    "version": st.just({}),
    "route_list": st.just({}),
    "route_ensure": with_check(
        {"routes": st.lists(st.fixed_dictionaries({"network": NETWORK, "gateway": GATEWAY}), max_size=4)}
    ),
    "route_remove": with_check({"networks": st.lists(NETWORK, max_size=4)}),
    "cron_job": with_check(
        {"job": st.just("console-logs")},
        schedule=st.one_of(st.sampled_from(["* * * * *", "*/5 1-3 * * 0,6"]), TEXT),
        options=st.fixed_dictionaries(
            {},
            optional={
                "max_size": st.one_of(st.integers(4096, 2**30), st.integers(0, 2**31)),
                "keep_size": st.one_of(st.integers(0, 4095), st.integers(-1, 2**31)),
                "grace_minutes": st.integers(0, 20000),
            },
        ),
        state=STATE,
    ),
    "service_restart": with_check({"service": st.sampled_from(["conntrackd", "sshd"])}),
    "iptables_chain": with_check(
        rules=st.lists(
            st.fixed_dictionaries({"protocol": st.sampled_from(["tcp", "udp"]), "port": st.integers(0, 65536)}),
            max_size=4,
        ),
        state=STATE,
    ),
    "modprobe_unblacklist": with_check({"modules": st.lists(st.just("bridge"), min_size=1, max_size=2)}),
    "conntrackd_config": with_check(
        hash_size=st.integers(1000, 2**24),
        hash_limit=st.integers(1024, 2**28),
        log_maxsize=st.one_of(st.from_regex(r"\A[1-9][0-9]{0,4}[kMG]?\Z"), TEXT),
        log_rotate=st.integers(0, 1001),
        restart=st.booleans(),
    ),
}


def without_check(params):
    return {key: value for key, value in params.items() if key != "check"}


BATCH_CALL = st.sampled_from(BATCHABLE).flatmap(
    lambda name: VALID[name].map(lambda params: {"function": name, "params": without_check(params)})
)
VALID["batch"] = with_check({"calls": st.lists(BATCH_CALL, min_size=1, max_size=3)})


def containers(value, path=()):
    """Every list and object inside ``value`` with its path."""
    found = [(path, value)] if isinstance(value, (list, dict)) else []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        found.extend(containers(child, (*path, key)))
    return found


@st.composite
def mutated(draw, valid):
    """A valid value with one to three things changed: a value replaced, a key added or one taken away."""
    value = json.loads(json.dumps(draw(valid)))
    for _step in range(draw(st.integers(1, 3))):
        places = containers(value)
        if not places:
            return draw(JSON)
        _path, place = draw(st.sampled_from(places))
        if isinstance(place, dict) and place and draw(st.booleans()):
            del place[draw(st.sampled_from(sorted(place)))]
        elif isinstance(place, dict):
            place[draw(KEYS)] = draw(JSON)
        elif place:
            place[draw(st.integers(0, len(place) - 1))] = draw(JSON)
        else:
            place.append(draw(JSON))
    return value


def call_args(name):
    """xapi's args for a call (a map of strings): mostly {"params": JSON}, sometimes anything xapi can deliver."""
    raw = st.one_of(
        st.just({}),
        st.builds(lambda text: {"params": text}, TEXT),
        st.builds(lambda params: {"params": json.dumps(params), "extra": "x"}, VALID[name]),
    )
    # Of the params: half valid, a third a valid value changed, the rest any JSON; one call in six gets raw args.
    params = st.sampled_from([VALID[name]] * 3 + [mutated(VALID[name])] * 2 + [JSON]).flatmap(lambda kind: kind)
    as_args = params.map(lambda value: {"params": json.dumps(value)})
    return st.sampled_from([as_args] * 5 + [raw]).flatmap(lambda kind: kind)


# --- the Dom0 under fuzz ------------------------------------------------------------------------------------------


class FuzzedDom0:
    """The child running the plugin under Dom0's Python in the namespace, and what Dom0 looks like."""

    def __init__(self, dom0, python):
        self.dom0 = dom0
        self.scratch = dom0.root.parent
        for relative, text in SEEDED.items():
            target = self.scratch / "root" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        (dom0.root / "etc" / "logrotate.d" / "link").symlink_to("../../../outside/secret")
        self.child = subprocess.Popen(
            dom0.command(python, CHILD, PLUGIN),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dom0.env,
        )
        self.initial_rules = self.foreign_rules()

    def close(self):
        self.child.stdin.close()
        self.child.wait(timeout=10)

    def run(self, function, args):
        self.child.stdin.write(json.dumps({"function": function, "args": args}) + "\n")
        self.child.stdin.flush()
        ready, _, _ = select.select([self.child.stdout], [], [], 30)
        assert ready, "the plugin did not answer %s %s within 30 s" % (function, args)
        return json.loads(self.child.stdout.readline())

    def files(self):
        """Every file and symlink under the scratch directory (root and outside it): path -> content digest."""
        found = {}
        for folder, _dirs, names in os.walk(self.scratch):
            for name in names:
                full = os.path.join(folder, name)
                relative = os.path.relpath(full, self.dom0.root)
                if relative.startswith("../") and not relative.startswith("../outside/"):
                    continue  # the stand-ins and their logs
                if os.path.islink(full):
                    found[relative] = "link:" + os.readlink(full)
                else:
                    with open(full, "rb") as handle:
                        found[relative] = "%o:%s" % (os.lstat(full).st_mode, hashlib.sha1(handle.read()).hexdigest())
        return found

    def routes(self):
        return sorted(self.dom0.sh("ip", "-4", "route", "show").splitlines())

    def rules(self):
        return self.dom0.sh("iptables", "-S").splitlines()

    def foreign_rules(self):
        return [line for line in self.rules() if CHAIN not in line]

    def kernel(self):
        return self.routes(), self.rules()


def check_routes(routes):
    """Dom0's own routes are all there; every other route is one the plugin may make."""
    bare = [route.split(" proto ")[0].strip() for route in routes]
    assert any(route.startswith("169.254.0.0/16 dev xenapi") for route in bare), routes
    assert any(route.startswith("192.0.2.0/24 dev eth0") for route in bare), routes
    for route in bare:
        words = route.split()
        if words[0] in ("169.254.0.0/16", "192.0.2.0/24"):
            continue
        network = ipaddress.IPv4Network(words[0])
        assert words[1:2] == ["via"] and words[3:5] == ["dev", "xenapi"], route
        gateway = ipaddress.IPv4Address(words[2])
        assert network.prefixlen >= 8, route
        assert not network.overlaps(HIMN) and not network.overlaps(ipaddress.IPv4Network("192.0.2.0/24")), route
        assert network.is_global or network.is_private, route
        assert not (network.is_loopback or network.is_multicast or network.is_reserved), route
        assert gateway in HIMN and str(gateway) not in ("169.254.0.0", "169.254.0.1", "169.254.255.255"), route


def checked_mode(args):
    try:
        params = json.loads(args.get("params", "{}"))
    except ValueError:
        return False
    return isinstance(params, dict) and params.get("check") is True


@pytest.fixture
def fuzzed(tmp_path, request):
    python = request.node.callspec.params["python"]
    assert INTERPRETERS[python], "%s is not installed" % python
    with firewalled_dom0(tmp_path, "hd-fuzz-") as dom0:
        dom0.standin("service", '#!/bin/sh\necho "$*" >> "$FAKE_LOG.service"\n')
        target = FuzzedDom0(dom0, python)
        try:
            yield target
        finally:
            target.close()


@pytest.mark.root
@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("python", ["python2.7", "python3.6"])
def test_fuzz(fuzzed, function, python, capsys):
    outcomes = Counter()
    allowed = WHITELIST[function] | COMMON

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(args=call_args(function))
    def one_call(args):
        kernel = function in KERNEL
        files_before = fuzzed.files()
        kernel_before = fuzzed.kernel() if kernel else None
        answer = fuzzed.run(function, args)
        outcomes[answer["outcome"]] += 1
        assert answer["outcome"] != "crash", "%s(%r) raised:\n%s" % (function, args, answer.get("traceback"))
        files_after = fuzzed.files()
        written = {
            path for path in set(files_before) | set(files_after) if files_before.get(path) != files_after.get(path)
        }
        assert written <= allowed, "%s(%r) wrote outside its whitelist: %s" % (
            function,
            args,
            sorted(written - allowed),
        )
        unchanged = answer["outcome"] == "refused" and (
            function != "batch" or "no call of the batch was run" in answer["message"]
        )
        if unchanged or (answer["outcome"] == "done" and checked_mode(args)):
            assert written <= COMMON - {"etc/sysconfig/xenserver-openstack-files.json"}, (function, args, written)
            if kernel:
                assert fuzzed.kernel() == kernel_before, (function, args, answer)
        if kernel:
            check_routes(fuzzed.routes())
            assert fuzzed.foreign_rules() == fuzzed.initial_rules, (function, args)

    one_call()
    with capsys.disabled():
        print(
            "\nfuzz %s %s: %d cases (%s)"
            % (python, function, sum(outcomes.values()), ", ".join("%s %d" % item for item in sorted(outcomes.items())))
        )
    assert sum(outcomes.values()) >= min(EXAMPLES, 10)


@pytest.mark.parametrize("python", ["python2.7", "python3.6"])
def test_the_fuzz_tells_a_crash_from_a_refusal(tmp_path, python):
    """What the fuzz counts as a crash: any exception but PluginError, and a PluginError whose message xapi cannot
    turn into text."""
    broken = tmp_path / "plugin"
    broken.write_text(
        "class PluginError(Exception):\n    pass\n"
        "def crash(session, args):\n    return args['missing']\n"
        "def refuse(session, args):\n    raise PluginError('no')\n"
        "def refuse_in_unicode(session, args):\n    raise PluginError(u'caf\\xe9')\n"
        "FUNCTIONS = {'crash': crash, 'refuse': refuse, 'refuse_in_unicode': refuse_in_unicode}\n"
    )
    calls = "".join('{"function": "%s", "args": {}}\n' % name for name in ("crash", "refuse", "refuse_in_unicode"))
    child = subprocess.run(
        [INTERPRETERS[python], CHILD, str(broken)], input=calls, capture_output=True, text=True, check=True
    )
    crash, refusal, unicode_refusal = (json.loads(line) for line in child.stdout.splitlines())
    assert crash["outcome"] == "crash" and "KeyError: 'missing'" in crash["traceback"]
    assert refusal == {"outcome": "refused", "message": "no"}
    assert unicode_refusal["outcome"] == "crash"
