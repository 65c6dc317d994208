"""pytest fixtures for a real Glance (registered with ``pytest_plugins = ["glancebed.pytest_plugin"]``).

Glance comes from PyPI in .build/glance-venv (scripts/setup-glance.sh). Without it the fixtures fail
with that instruction, rather than skip, so that a missing install step cannot pass unnoticed.
"""

import pytest

from .server import GlanceError, GlanceServer


@pytest.fixture(scope="session")
def glance(tmp_path_factory):
    """A running Glance for the whole session: ``glance.endpoint`` (http://127.0.0.1:PORT), ``glance.cloud``
    (openstacksdk settings), ``glance.uploads()`` (image data uploads it served so far). Tests share it: each
    uses image names of its own. Its gunicorn process group is stopped at the end."""
    server = GlanceServer(tmp_path_factory.mktemp("glance"))
    try:
        server.prepare()
        server.start()
        server.wait_ready()
    except GlanceError as error:
        server.stop()
        pytest.fail(str(error), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def glance_factory(tmp_path):
    """Factory of extra Glance servers, prepared (config and database) but not started:
    ``server = glance_factory()``; then ``server.start()`` and ``server.wait_ready()``. All are stopped
    at teardown."""
    servers = []

    def prepare():
        server = GlanceServer(tmp_path / ("glance-%d" % len(servers)))
        servers.append(server)
        try:
            server.prepare()
        except GlanceError as error:
            pytest.fail(str(error), pytrace=False)
        return server

    yield prepare
    for server in servers:
        server.stop()
