"""pytest fixtures for the XAPI simulator (registered with ``pytest_plugins = ["xapisim.pytest_plugin"]``)."""

import os

import pytest

from . import dom0
from .server import Simulator

SCENARIO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")


def scenario_path(name):
    return os.path.join(SCENARIO_DIR, name + ".yml")


def scenario_names():
    """Names of the runnable scenarios (``tests/scenarios/*.yml`` without the ``_``-prefixed bases);
    a plain function so that it can feed ``pytest.mark.parametrize``."""
    return sorted(f[:-4] for f in os.listdir(SCENARIO_DIR) if f.endswith(".yml") and not f.startswith("_"))


@pytest.fixture(scope="session", autouse=True)
def _dom0_mount_targets():
    """As root, every simulator mounts Dom0's directories in a namespace of its own over targets it makes on the
    machine when missing (tests/xapisim/dom0.py); at the end of the session those go again, when empty and no
    namespace mounts on them (as the bed's `down` does)."""
    missing = dom0.missing_targets() if os.geteuid() == 0 else []
    yield
    for path in reversed(missing):
        dom0.remove_target(path)


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
