"""The old fleet that scripts/setup-pythons.sh builds: target Pythons of compute VMs and the ansible-core lines
that manage them.

- ``.build/targets/pyX.Y``: venvs of Python 2.7, 3.6 and 3.8 with what the modules need on such a node.
- ``.build/lines/2.16`` and ``.build/lines/2.19``: ansible-core 2.16 (manages 2.7 and 3.6) and 2.19 (manages
  3.8), each with its ``venv`` and ``collections`` path.
"""

import os

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
BUILD = os.path.join(ROOT, ".build")
SETUP = "run scripts/setup.sh (it builds the old ansible-core lines and target Pythons)"

# Target Python -> the newest ansible-core line that still manages it.
LINE_OF = {"2.7": "2.16", "3.6": "2.16", "3.8": "2.19"}
OLD_TARGETS = sorted(LINE_OF)


def target_python(version):
    """The interpreter of the target venv for Python ``version``; AssertionError naming the fix when missing."""
    python = os.path.join(BUILD, "targets", "py" + version, "bin", "python")
    assert os.access(python, os.X_OK), "no target venv for Python %s (%s): %s" % (version, python, SETUP)
    return python


class Line:
    """One ansible-core line: its venv's tools and its collections path."""

    def __init__(self, line):
        self.line = line
        self.dir = os.path.join(BUILD, "lines", line)
        self.bin = os.path.join(self.dir, "venv", "bin")
        self.collections = os.path.join(self.dir, "collections")
        assert os.access(self.tool("ansible-playbook"), os.X_OK), "no ansible-core %s in %s: %s" % (
            line,
            self.dir,
            SETUP,
        )

    def tool(self, name):
        return os.path.join(self.bin, name)

    def env(self, base=None):
        """The environment for its tools: its collections path, its venv first on PATH."""
        env = dict(os.environ if base is None else base)
        env["ANSIBLE_COLLECTIONS_PATH"] = self.collections
        env["PATH"] = self.bin + os.pathsep + env.get("PATH", "")
        return env


def line_for(version):
    """The ansible-core line that manages target Python ``version``."""
    return Line(LINE_OF[version])
