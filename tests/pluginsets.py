"""The collection's Dom0 plugin sets (tools/dom0_plugin_sets.py, not a package) for the tests, and their archives
in the tests' own cache, .build/archives (fetched once from PyPI, checked against the pins, kept)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import dom0_plugin_sets  # noqa: E402

ARCHIVES = os.path.join(ROOT, ".build", "archives")
SETS = dom0_plugin_sets.load()
OS_XENAPI = SETS["sets"]["os-xenapi-0.3.4"]["sources"][0]  # nova 18-21's plugins, and os-xenapi's client


def archive(source=OS_XENAPI):
    """The bytes of a source archive, from the tests' cache (downloaded into it the first time)."""
    return dom0_plugin_sets.fetch(source, cache_dir=ARCHIVES)
