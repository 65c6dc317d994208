#!/usr/bin/env bash
# The changelog's CI check: `antsibull-changelog lint` on the fragments, then `antsibull-changelog release` as a dry
# run, in a copy of the collection (the repository keeps its fragments and changelog.yaml), and a check that the
# release names every module, plugin and role (a role needs version_added on its entry points to be listed).
#   scripts/changelog.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xenserver-openstack-changelog.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

antsibull-changelog lint
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$WORK" 2>/dev/null || true
version=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
(cd "$WORK" && antsibull-changelog release --version "$version" --date 2000-01-01 >/dev/null 2>"$WORK/release.log") || {
  cat "$WORK/release.log" >&2
  exit 1
}
python - "$WORK/CHANGELOG.rst" <<'PY'
import glob
import os
import sys

text = open(sys.argv[1]).read()
names = [os.path.basename(p)[: -len(".py")] for p in glob.glob("plugins/modules/*.py")]
names += [os.path.basename(p)[: -len(".yml")] for p in glob.glob("plugins/filter/*.yml")]
names += [os.path.basename(p)[: -len(".py")] for p in glob.glob("plugins/inventory/*.py")]
names += [os.path.basename(os.path.dirname(os.path.dirname(p))) for p in glob.glob("roles/*/meta/argument_specs.yml")]
missing = sorted(n for n in names if "xenserver.openstack.%s - " % n not in text)
if "New Roles" not in text or missing:
    sys.exit("the release does not list: %s (a role needs version_added: on meta/argument_specs.yml's entry points, "
             "a plugin in its documentation)" % (", ".join(missing) or "any role"))
print("changelog: the release lists %d modules, plugins and roles" % len(names))
PY
