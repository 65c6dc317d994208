"""Every role: its argument specification covers every default, with the same value, and names nothing else.

The role READMEs send operators to ``ansible-doc -t role`` for the variables, so the specification must be whole:
an option for each default (same default value, one spec per variable across entry points), and no option that is
neither a default nor a documented input without one (a required or optional variable with no default).
"""

import glob
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(ROOT, "roles", "*", "meta")))


def load(role, *path):
    full = os.path.join(ROOT, "roles", role, *path)
    if not os.path.exists(full):
        return {}
    with open(full) as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_cover_every_default_with_the_same_value(role):
    defaults = load(role, "defaults", "main.yml")
    specs = load(role, "meta", "argument_specs.yml")["argument_specs"]
    options = {}
    for entry, spec in specs.items():
        assert spec.get("version_added"), "%s: entry point %s has no version_added" % (role, entry)
        for name, option in (spec.get("options") or {}).items():
            assert options.setdefault(name, option) == option, "%s: %s is specified twice, differently" % (role, name)
    missing = sorted(set(defaults) - set(options))
    assert not missing, "%s: defaults without an option in meta/argument_specs.yml: %s" % (role, missing)
    differ = sorted(name for name in defaults if options[name].get("default", COMPUTED) != defaults[name])
    differ = [name for name in differ if not ("default" not in options[name] and computed(defaults[name]))]
    assert not differ, "%s: defaults whose spec gives another default: %s" % (role, differ)
    stray = sorted(name for name, option in options.items() if name not in defaults and "default" in option)
    assert not stray, "%s: options with a default that defaults/main.yml does not have: %s" % (role, stray)
    # The role's own variables, and the collection-wide inventory variables it reads (never defaulted by a role).
    foreign = sorted(
        name
        for name in options
        if not name.startswith(role + "_") and not (name.startswith(INVENTORY) and name not in defaults)
    )
    assert not foreign, "%s: options that are neither the role's nor inventory variables: %s" % (role, foreign)


COMPUTED = object()
# Prefixes of the inventory variables every role may read (xenserver_password, openstack_options, ...).
INVENTORY = ("xenserver_", "openstack_")


def computed(value):
    """A default computed from other variables, which the spec describes in prose rather than repeats."""
    return isinstance(value, str) and "{{" in value
