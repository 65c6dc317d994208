"""pytest fixtures for the XAPI simulator (registered with ``pytest_plugins = ["xapisim.pytest_plugin"]``)."""

import os

import pytest

from .server import Simulator

SCENARIO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")


def scenario_path(name):
    return os.path.join(SCENARIO_DIR, name + ".yml")


def scenario_names():
    """Names of the runnable scenarios (``tests/scenarios/*.yml`` without the ``_``-prefixed bases);
    a plain function so that it can feed ``pytest.mark.parametrize``."""
    return sorted(f[:-4] for f in os.listdir(SCENARIO_DIR) if f.endswith(".yml") and not f.startswith("_"))


@pytest.fixture
def xapi_sim(tmp_path):
    """Factory: ``sim = xapi_sim("xcpng-8.3", **options)`` returns a started Simulator (127.0.0.1, free port,
    root under tmp_path unless given). ``host=``/``port=`` choose the address; a name ending in ``.yml`` is a
    scenario file path. All are stopped at teardown."""
    sims = []

    def start(name, host="127.0.0.1", port=0, **options):
        options.setdefault("root", str(tmp_path / ("xapisim-%d" % len(sims))))
        sim = Simulator(name if name.endswith(".yml") else scenario_path(name), **options)
        sims.append(sim)
        sim.start(host, port)
        return sim

    yield start
    for sim in sims:
        sim.stop()
