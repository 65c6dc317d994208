"""xapisim: a stateful XML-RPC XAPI simulator that the real ``XenAPI`` client talks to over HTTP.

    from xapisim import Simulator
    with Simulator("tests/scenarios/xcpng-8.3.yml", root=tmpdir) as sim:   # started on 127.0.0.1:<free port>
        session = XenAPI.Session(sim.url)

Layout: ``scenario`` (YAML scenario files), ``db`` (object store, generic messages, query language),
``api`` (xapi semantics: sessions, Async, call_plugin, pool_update ...), ``updates`` (update metadata from a
VDI), ``server`` (HTTP server and ``Simulator``), ``dom0lib/XenAPIPlugin.py`` (what plugins import),
``pytest_plugin`` (the ``xapi_sim`` fixture) and ``__main__`` (``python -m xapisim``).
"""

from .scenario import ScenarioError, load_scenario
from .server import Simulator

__all__ = ["ScenarioError", "Simulator", "load_scenario"]
