"""The documentation stays true to the code: messages, variables, modules, links and benchmarks it names exist."""

import ast
import glob
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")
TROUBLESHOOTING = os.path.join(DOCS, "troubleshooting.md")
# Pages that name role and inventory variables for operators.
OPERATOR_PAGES = ["quickstart.md", "migration-from-fuel.md", "troubleshooting.md", "performance.md"]
ROLE_PREFIX = re.compile(r"\b(dom0_suppack|himn_network|nova_xenapi|misc_patches|guest_images)_[a-z0-9_]*[a-z0-9]\b")
INVENTORY_VARIABLE = re.compile(r"\b(?:xenserver|openstack)_[a-z0-9_]*[a-z0-9]\b")
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[sdirfxXeEgGc]|\{[^{}]*\}")
# A message template is matched against a documented message only when it has this much fixed text: shorter
# ones ("%s: %s") would match anything.
MIN_FIXED_TEXT = 12
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def squeeze(text):
    return " ".join(text.split())


def code_files():
    files = glob.glob(os.path.join(ROOT, "plugins", "**", "*.py"), recursive=True)
    return files + glob.glob(os.path.join(ROOT, "dom0", "etc", "xapi.d", "plugins", "*"))


def role_messages(node, found):
    """Add the messages of the roles' and playbooks' tasks (msg, fail_msg) to ``found`` as %-style templates: each
    Jinja expression becomes a placeholder."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("msg", "fail_msg") and isinstance(value, str):
                found.add(squeeze(JINJA.sub("%s", value.replace("%", "%%"))))
            role_messages(value, found)
    elif isinstance(node, list):
        for item in node:
            role_messages(item, found)


def string_constants():
    """Every string literal of the collection's Python code (plugins/ and the Dom0 plugin), and every message of its
    roles' and playbooks' tasks, whitespace squeezed."""
    found = set()
    for path in code_files():
        for node in ast.walk(ast.parse(read(path), path)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(squeeze(node.value))
    tasks = glob.glob(os.path.join(ROOT, "roles", "*", "tasks", "*.yml"))
    for path in tasks + glob.glob(os.path.join(ROOT, "playbooks", "*.yml")):
        role_messages(yaml.safe_load(read(path)), found)
    return found


CONSTANTS = string_constants()


def template_regex(template):
    """A regex for a %-style or {}-style message template; placeholders match any text (the last one greedily)."""
    pieces, last = [], 0
    for match in PLACEHOLDER.finditer(template):
        pieces.append(re.escape(template[last : match.start()].replace("%%", "%")))
        pieces.append("(?:.+?)")
        last = match.end()
    pieces.append(re.escape(template[last:].replace("%%", "%")))
    if pieces[-1] == "" and len(pieces) > 1:
        pieces[-2] = "(?:.+)"
    return re.compile("".join(pieces))


def fixed_text(template):
    return len(PLACEHOLDER.sub("", template).replace(" ", ""))


def longest_piece(template):
    return max(PLACEHOLDER.split(template), key=len).replace("%%", "%")


# (the longest fixed piece, to skip the regex when it is not in the text; the regex)
TEMPLATES = [(longest_piece(c), template_regex(c)) for c in CONSTANTS if fixed_text(c) >= MIN_FIXED_TEXT]
# Names built from a template, like "openstack_%s_address" in the Fuel inventory.
NAME_TEMPLATES = [template_regex(c) for c in CONSTANTS if re.fullmatch(r"[a-z][a-z0-9]*_[a-z0-9_]*%s[a-z0-9_]*", c)]


def troubleshooting_entries():
    """[(heading, the fixed text in its backticks, the quoted example message)] of docs/troubleshooting.md."""
    entries, lines = [], read(TROUBLESHOOTING).splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("### "):
            continue
        fragment = re.search(r"`([^`]+)`(?!.*`)", line)
        quote, following = [], lines[index + 1 :]
        for other in following:
            if other.startswith(">"):
                quote.append(other[1:].strip())
            elif quote or (other.strip() and not other.startswith(">")):
                break
        entries.append((line[4:], fragment.group(1) if fragment else None, squeeze(" ".join(quote))))
    return entries


ENTRIES = troubleshooting_entries()


def test_troubleshooting_has_entries():
    assert len(ENTRIES) >= 20


@pytest.mark.parametrize("heading, fragment, example", ENTRIES, ids=[e[0][:60] for e in ENTRIES])
def test_each_troubleshooting_message_is_one_the_code_gives(heading, fragment, example):
    assert fragment, "the heading names no message text in backticks: %s" % heading
    assert example, "the entry quotes no example message: %s" % heading
    holders = [c for c in CONSTANTS if fragment in c]
    assert holders, "no string of plugins/ or dom0/ holds %r any more" % fragment
    assert fragment in example, "the example does not show %r" % fragment
    assert any(template_regex(c).search(example) for c in holders), (
        "the example does not fit the code's template: %s" % holders
    )
    covered = [False] * len(example)
    for piece, regex in TEMPLATES:
        for match in regex.finditer(example) if piece in example else ():
            covered[match.start() : match.end()] = [True] * (match.end() - match.start())
    stray = "".join(ch if not ok else " " for ch, ok in zip(example, covered)).split()
    assert not stray, "parts of the example come from no message of the code: %s" % stray


def test_every_module_is_in_the_readme():
    readme = read(os.path.join(ROOT, "README.md"))
    modules = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")))
    missing = [m for m in modules if "xenserver.openstack.%s" % m not in readme]
    assert not missing, "README.md does not list these modules: %s" % missing


def test_every_role_has_a_readme_and_is_in_the_readme():
    readme = read(os.path.join(ROOT, "README.md"))
    roles = sorted(os.listdir(os.path.join(ROOT, "roles")))
    assert all(os.path.isfile(os.path.join(ROOT, "roles", role, "README.md")) for role in roles)
    assert [role for role in roles if "`%s`" % role not in readme] == []


def role_variables(role):
    """The variables a role declares: its defaults and every option of every entry point."""
    names = set()
    defaults = os.path.join(ROOT, "roles", role, "defaults", "main.yml")
    if os.path.exists(defaults):
        names.update(yaml.safe_load(read(defaults)) or {})
    specs = os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")
    if os.path.exists(specs):
        for entry in (yaml.safe_load(read(specs)) or {}).get("argument_specs", {}).values():
            names.update(entry.get("options") or {})
    return names


@pytest.mark.parametrize("page", OPERATOR_PAGES)
def test_role_variables_named_in_the_docs_exist(page):
    text = read(os.path.join(DOCS, page))
    # A name the page shows as the preflight's example of a misspelt variable is meant not to exist.
    misspelt = set(re.findall(r"\b(\w+) is not a variable of the role", text))
    unknown = sorted(
        {m.group(0) for m in ROLE_PREFIX.finditer(text) if m.group(0) not in role_variables(m.group(1))} - misspelt
    )
    assert not unknown, "%s names variables that no role has: %s" % (page, unknown)


def used_text():
    """The text of the playbooks, roles and code, where inventory variables are read or set."""
    paths = glob.glob(os.path.join(ROOT, "playbooks", "*.yml"))
    paths += glob.glob(os.path.join(ROOT, "roles", "**", "*.yml"), recursive=True)
    paths += code_files()
    return "\n".join(read(p) for p in paths)


@pytest.mark.parametrize("page", OPERATOR_PAGES)
def test_inventory_variables_named_in_the_docs_are_used(page):
    used = used_text()
    names = {m.group(0) for m in INVENTORY_VARIABLE.finditer(read(os.path.join(DOCS, page)))}
    unknown = sorted(
        name
        for name in names
        if not re.search(r"\b%s\b" % name, used) and not any(regex.fullmatch(name) for regex in NAME_TEMPLATES)
    )
    assert not unknown, "%s names variables that no playbook, role or plugin uses: %s" % (page, unknown)


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    return {slug(line.lstrip("#")) for line in read(path).splitlines() if line.startswith("#")}


def markdown_pages():
    pages = glob.glob(os.path.join(DOCS, "*.md")) + glob.glob(os.path.join(ROOT, "roles", "*", "README.md"))
    return sorted([*pages, os.path.join(ROOT, "README.md"), os.path.join(ROOT, "benchmarks", "README.md")])


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_resolve(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", read(page)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(resolved):
            broken.append(target)
        elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
            broken.append(target)
    assert not broken, "%s has broken links: %s" % (os.path.relpath(page, ROOT), broken)


def test_every_benchmark_is_described_and_its_figures_recorded():
    scripts = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))
    readme = read(os.path.join(ROOT, "benchmarks", "README.md"))
    performance = read(os.path.join(DOCS, "performance.md"))
    assert [s for s in scripts if s not in readme] == []
    assert [s for s in scripts if s not in performance] == []
    for script in ("noop_rerun.py", "scaling.py", "xapi_calls.py"):
        source = read(os.path.join(ROOT, "benchmarks", script))
        assert 'print("ratio: %.2f"' in source, "%s must print its ratio last" % script
        assert "--pairs" in source and "--runs" in source


def test_changelog_fragments_are_one_line_per_change():
    """Each entry of a fragment is one line that names what it changes first: ``name - what changed``."""
    bad = []
    for path in sorted(glob.glob(os.path.join(ROOT, "changelogs", "fragments", "*.yml"))):
        text = read(path)
        if re.search(r"^\s*(?:- |[a-z_]+: )[>|][-+]?\s*$", text, re.M):
            bad.append("%s: an entry is a folded or literal block; write one line per change" % path)
        for section, entries in (yaml.safe_load(text) or {}).items():
            for entry in [entries] if isinstance(entries, str) else entries:
                if section != "release_summary" and not re.match(r"[\w./ -]+ - \S", entry):
                    bad.append("%s: %r does not start with 'name - '" % (path, entry[:60]))
    assert not bad, "\n".join(bad)
