"""host.call_plugin and XML-RPC values as xapi handles them (tests/xapisim/dom0.py, server.py, db.py), through the
real XenAPI client; the plugins run under the scenario's Dom0 Python (scripts/setup.sh builds them)."""

import http.client
import json
import os
import textwrap
import xmlrpc.client
from urllib.parse import urlsplit

import pytest
import XenAPI
from xapisim import dom0

PROBE = textwrap.dedent("""\
    {shebang}
    import json
    import os
    import signal
    import sys
    import time

    import XenAPIPlugin

    if sys.version_info[0] == 2:
        import xmlrpclib
    else:
        import xmlrpc.client as xmlrpclib


    def probe(session, args):
        return json.dumps({{"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(),
                           "session": [session.__class__.__name__, session._session],
                           "version": "%d.%d" % sys.version_info[:2], "args": args}})


    def refuse(session, args):
        raise XenAPIPlugin.Failure("NOT_ALLOWED", ["because", "1"])


    def refuse_int(session, args):
        raise XenAPIPlugin.Failure("NOT_ALLOWED", ["because", 1])


    def refuse_empty(session, args):
        sys.stdout.write(xmlrpclib.dumps(({{"Status": "Failure", "ErrorDescription": []}},), "", True))
        sys.exit(0)


    def boom(session, args):
        raise ValueError("kaboom")


    def nothing(session, args):
        return None


    def number(session, args):
        return 42


    def crash(session, args):
        sys.stdout.write("partial")
        sys.stderr.write("dy\\x01ing\\n")
        sys.exit(3)


    def killed(session, args):
        os.kill(os.getpid(), signal.SIGTERM)


    def garbage(session, args):
        sys.stdout.write("not xml")
        sys.exit(0)


    def silent(session, args):
        sys.exit(0)


    def fault(session, args):
        sys.stdout.write(xmlrpclib.dumps(xmlrpclib.Fault(7, "bad"), methodresponse=True))
        sys.exit(0)


    def twice(session, args):
        print(XenAPIPlugin.success_message("first"))
        return "second"


    def noisy(session, args):
        sys.stderr.write("chatter\\n")
        return "ok"


    def blank(session, args):
        return "   "


    def sleepy(session, args):
        time.sleep(30)
        return "late"


    if __name__ == "__main__":
        XenAPIPlugin.dispatch(dict((name, fn) for name, fn in globals().items() if callable(fn) and name != "dispatch"))
    """)


def login(sim):
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password("root", "xenroot", "2.21", "test_xapisim_plugins")
    return session


@pytest.fixture
def dom0_of(xapi_sim):
    """``sim, x, host, install = dom0_of(scenario)``; ``install(name, text, mode)`` writes Dom0's plugin file."""

    def start(scenario="xcpng-8.3"):
        sim = xapi_sim(scenario)
        session = login(sim)

        def install(name, text=None, mode=0o755):
            path = os.path.join(sim.plugin_dir, name)
            with open(path, "w") as f:
                f.write(PROBE.format(shebang="#!/usr/bin/env python") if text is None else text)
            os.chmod(path, mode)

        return sim, session, session.xenapi.host.get_all()[0], install

    return start


def failure(call, *args):
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


# -- host.call_plugin ----------------------------------------------------------------------------
def test_the_plugin_is_an_exact_entry_of_the_plugin_directory(dom0_of):
    sim, session, host, install = dom0_of()
    call = session.xenapi.host.call_plugin
    install("probe")
    os.mkdir(os.path.join(sim.plugin_dir, "subdir"))
    assert json.loads(call(host, "probe", "probe", {}))["version"] == "2.7"
    for name in ("probe.py", "PROBE", "../plugins/probe", "absent"):
        assert failure(call, host, name, "probe", {}) == ["XENAPI_MISSING_PLUGIN", name]
    # xapi checks neither the entry's type nor its mode: the exec fails (126)
    assert failure(call, host, "subdir", "probe", {}) == ["XENAPI_PLUGIN_FAILURE", "non-zero exit", "", ""]
    assert failure(call, "OpaqueRef:bad", "probe", "probe", {})[0] == "HANDLE_INVALID"


@pytest.mark.parametrize(
    ("scenario", "shebang", "expected"),
    [
        ("xcpng-8.3", "#!/usr/bin/env python", "2.7"),
        ("xcpng-8.3", "#!/usr/bin/python", "2.7"),
        ("xcpng-8.3", "#!/usr/bin/env python3", "3.6"),
        ("xcpng-8.3", "#!/usr/bin/python3.6", "3.6"),
        ("xenserver-7.1", "#!/usr/bin/env python2", "2.7"),
        ("citrix-8.2", "#!/usr/bin/python2.7", "2.7"),
        ("xcpng-8.2.1", "#!/usr/bin/env python3", "/usr/bin/env: 'python3': No such file or directory\n"),
        ("citrix-8.2", "#!/usr/bin/python3", ""),
    ],
)
def test_the_shebang_picks_dom0s_python(dom0_of, scenario, shebang, expected):
    _sim, session, host, install = dom0_of(scenario)
    install("probe", PROBE.format(shebang=shebang))
    if "." in expected:
        assert json.loads(session.xenapi.host.call_plugin(host, "probe", "probe", {}))["version"] == expected
    else:  # no such interpreter in this Dom0: exit 127, with env's message when env looked for it
        details = failure(session.xenapi.host.call_plugin, host, "probe", "probe", {})
        assert details == ["XENAPI_PLUGIN_FAILURE", "non-zero exit", "", expected]


@pytest.mark.root
def test_a_plugin_runs_as_xapi_execs_it(dom0_of):
    _sim, session, host, install = dom0_of()
    install("probe")
    args = {"a": "x<&>\"'y", "empty": ""}
    seen = json.loads(session.xenapi.host.call_plugin(host, "probe", "probe", args))
    call = (
        "<methodCall><methodName>probe</methodName><params><param><value>%s</value></param><param><value><struct>"
        "<member><name>a</name><value>x&lt;&amp;&gt;&quot;'y</value></member><member><name>empty</name><value/>"
        "</member></struct></value></param></params></methodCall>" % session.handle
    )
    assert seen["argv"] == ["/etc/xapi.d/plugins/probe", call]
    assert seen["env"] == {"PATH": "%s:/sbin:/usr/sbin:/bin:/usr/bin" % dom0.DOM0BIN}
    assert seen["cwd"] == "/"
    assert seen["session"] == ["Session", session.handle]
    assert seen["args"] == args


def test_the_call_xapi_builds():
    assert dom0.method_call("f", "", {}) == (
        "<methodCall><methodName>f</methodName><params><param><value/></param><param><value><struct/></value></param>"
        "</params></methodCall>"
    )
    text = dom0.method_call("f&", "OpaqueRef:1", {"k\x02": "a\x01b\tc\nd\r"})
    assert "<member><name>k</name><value>ab\tc\nd\r</value></member>" in text
    assert "<methodName>f&amp;</methodName>" in text


UNBOX_INT = "XMLRPC.RunTimeTypeError(\"unbox: Element=int should contain 'string'\", _)"


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        ("nope", ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "nope"]),
        ("refuse", ["NOT_ALLOWED", "because", "1"]),
        ("refuse_int", ["INTERNAL_ERROR", UNBOX_INT]),
        ("refuse_empty", ["INTERNAL_ERROR", 'XMLRPC.RunTimeTypeError("Empty array of error strings", _)']),
        ("boom", ["XENAPI_PLUGIN_FAILURE", "boom", "ValueError", "kaboom"]),
        (
            "nothing",
            ["XENAPI_PLUGIN_FAILURE", "nothing", "TypeError", "cannot marshal None unless allow_none is enabled"],
        ),
        ("number", ["INTERNAL_ERROR", UNBOX_INT]),
        # (the \x01 the plugin writes to stderr is dropped from the response, as ocaml-rpc does)
        ("crash", ["XENAPI_PLUGIN_FAILURE", "non-zero exit", "partial", "dying\n"]),
        ("killed", ["XENAPI_PLUGIN_FAILURE", "signal: SIGTERM", "", ""]),
        ("garbage", ["XENAPI_PLUGIN_FAILURE", "failed to parse plugin output", "not xml", "syntax error line 1"]),
        ("silent", ["XENAPI_PLUGIN_FAILURE", "failed to parse plugin output", "", "no element found line 1"]),
        ("fault", ["XENAPI_PLUGIN_FAILURE", "fault", "7", "bad"]),
    ],
)
def test_plugin_failures_as_xapi_reports_them(dom0_of, fn, expected):
    _sim, session, host, install = dom0_of()
    install("probe")
    assert failure(session.xenapi.host.call_plugin, host, "probe", fn, {}) == expected


def test_the_first_document_counts_and_stderr_goes(dom0_of):
    _sim, session, host, install = dom0_of()
    install("probe")
    call = session.xenapi.host.call_plugin
    assert call(host, "probe", "twice", {}) == "first"
    assert call(host, "probe", "noisy", {}) == "ok"
    assert call(host, "probe", "blank", {}) == ""


def test_exec_needs_the_exec_bit_and_a_shebang(dom0_of):
    _sim, session, host, install = dom0_of()
    call = session.xenapi.host.call_plugin
    install("probe", mode=0o644)
    install("bare", PROBE.format(shebang=""))
    for name in ("probe", "bare"):
        assert failure(call, host, name, "probe", {}) == ["XENAPI_PLUGIN_FAILURE", "non-zero exit", "", ""]
    response = xmlrpc.client.dumps(({"Status": "Success", "Value": "from sh"},), methodresponse=True)
    install("shell", "#!/bin/sh\ncat <<'EOF'\n%sEOF\n" % response)
    assert call(host, "shell", "any", {}) == "from sh"


def test_the_simulators_own_time_limit_kills_the_plugin(dom0_of, monkeypatch):
    _sim, session, host, install = dom0_of()
    install("probe")
    monkeypatch.setattr(dom0, "SAFETY_LIMIT", 1)
    details = failure(session.xenapi.host.call_plugin, host, "probe", "sleepy", {})
    assert details == ["XENAPI_PLUGIN_FAILURE", "signal: SIGKILL", "", ""]


# -- XML-RPC values ------------------------------------------------------------------------------
def test_base64_anywhere_is_http_500(dom0_of):
    sim, session, host, install = dom0_of()
    install("probe")
    x = session.xenapi
    vm = x.VM.get_all()[0]
    for call, args in (
        (x.host.call_plugin, (host, "probe", "probe", {"params": b"\x80\x04\x95"})),
        (x.VM.set_name_label, (vm, xmlrpc.client.Binary(b"name"))),
        (x.VM.get_record, ([b"nested"],)),
    ):
        with pytest.raises(xmlrpc.client.ProtocolError) as info:
            call(*args)
        assert (info.value.errcode, info.value.errmsg) == (500, "Internal Error")
    assert x.VM.get_name_label(vm) != "name"
    body = xmlrpc.client.dumps((session.handle, xmlrpc.client.Binary(b"x")), methodname="VM.get_all").encode()
    pages = []
    for bad in (body, b"not xml", body.replace(b"<base64>\neA==\n</base64>", b"<int>1x</int>")):
        conn = http.client.HTTPConnection("127.0.0.1", urlsplit(sim.url).port)
        conn.request("POST", "/", bad, {"Content-Type": "text/xml"})
        answer = conn.getresponse()
        pages.append(answer.read().decode())
        conn.close()
        assert (answer.status, answer.reason, answer.getheader("Content-Type")) == (500, "Internal Error", "text/html")
        assert answer.getheader("Connection") == "close" and "HTTP 500 internal server error" in pages[-1]
    assert "open_tag(base64)" in pages[0] and "1x" in pages[2]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "I(5)"),
        (True, "B(true)"),
        (1.5, "F(1.5)"),
        (["x", "y"], "[S(x);S(y)]"),
        ({"b": "c"}, "{b:S(c)}"),
        (None, "N"),
    ],
)
def test_a_string_map_takes_only_strings(dom0_of, value, text):
    _sim, session, host, _install = dom0_of()
    call = session.xenapi.host.call_plugin  # the client marshals None as <nil/> (allow_none)
    # xapi unmarshals every parameter before it runs anything: no XENAPI_MISSING_PLUGIN
    details = failure(call, host, "absent", "f", {"ok": "s", "bad": value})
    assert details == ["INTERNAL_ERROR", "Failure(\"Expected string, got '%s'\")" % text]
    not_a_map = failure(call, host, "absent", "f", "args")
    assert not_a_map == ["INTERNAL_ERROR", "Failure(\"Expecting Rpc.Dict, but found 'S(args)'\")"]


def test_int64_parameters_take_strings_and_other_types_only_their_own(dom0_of):
    _sim, session, _host, _install = dom0_of()
    x = session.xenapi
    vm = x.VM.get_all()[0]
    x.VM.set_memory_static_max(vm, "8589934592")
    assert x.VM.get_memory_static_max(vm) == "8589934592"
    x.VM.set_VCPUs_max(vm, 4)
    assert x.VM.get_VCPUs_max(vm) == "4"
    assert failure(x.VM.set_VCPUs_max, vm, "four") == ["INTERNAL_ERROR", 'Failure("Int64.of_string")']
    assert failure(x.VM.set_VCPUs_max, vm, True) == ["INTERNAL_ERROR", "Failure(\"Expected int64, got 'B(true)'\")"]
    assert failure(x.VM.set_name_label, vm, 5) == ["INTERNAL_ERROR", "Failure(\"Expected string, got 'I(5)'\")"]
    assert failure(x.VM.add_to_other_config, vm, "k", 1) == [
        "INTERNAL_ERROR",
        "Failure(\"Expected string, got 'I(1)'\")",
    ]
    assert failure(x.VM.set_is_a_template, vm, "true") == [
        "INTERNAL_ERROR",
        "Failure(\"Expected bool, got 'S(true)'\")",
    ]
