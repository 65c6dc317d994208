"""Shared pytest set-up: the collection on the import path, the XAPI simulator fixtures, in-process module runs."""

import contextlib
import json
import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
COLLECTIONS = os.path.join(ROOT, ".build", "collections")

sys.path.insert(0, TESTS)
sys.path.insert(0, COLLECTIONS)
pytest_plugins = ["xapisim.pytest_plugin", "glancebed.pytest_plugin"]


def _link_collection():
    """Make ``ansible_collections.xenserver.openstack`` importable from the checkout, as scripts/setup.sh does."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "xenserver", "openstack")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)


_link_collection()


def pytest_configure(config):
    config.addinivalue_line("markers", "root: needs root and network namespaces (the test bed)")
    # With pytest-xdist (scripts/test.sh runs the integration tests on two workers), each worker's beds get
    # namespace names of their own: XS_BED_PREFIX is read when bedlib is imported, which collection does after this.
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker:
        os.environ["XS_BED_PREFIX"] = "%s%s-" % (os.environ.get("XS_BED_PREFIX", "xs-"), worker)


def pytest_runtest_setup(item):
    """Root-only tests skip for a non-root developer; in CI (XO_REQUIRE_ROOT=1) they fail instead."""
    if "root" in item.keywords and os.geteuid() != 0:
        if os.environ.get("XO_REQUIRE_ROOT") == "1":
            pytest.fail("needs root and network namespaces, and XO_REQUIRE_ROOT=1 forbids skipping it")
        pytest.skip("needs root and network namespaces")


@contextlib.contextmanager
def controller_off():
    from ansible.module_utils import _internal

    saved, _internal.is_controller = getattr(_internal, "is_controller", False), False
    try:
        yield
    finally:
        _internal.is_controller = saved


@pytest.fixture
def run_module(capsys):
    """Run a module's main() in this process with the given arguments; return its JSON result.

    Example: ``result = run_module(xen_host_info, {"url": sim.url, "password": "x"}, check_mode=True)``.
    """
    from ansible.module_utils.testing import patch_module_args

    def run(module, args, check_mode=False):
        args = dict(args, _ansible_check_mode=check_mode)
        # A module runs in a process of its own, never the controller's: once a test has loaded controller code
        # (an inventory or filter plugin), ansible-core would send module warnings to the display instead of the
        # result.
        with patch_module_args(args), pytest.raises(SystemExit), controller_off():
            module.main()
        out = capsys.readouterr().out
        return json.loads(out)

    return run
