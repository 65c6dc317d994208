# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The HIMN forwarding rule set: rendering, iptables-save parsing, and plans for the live rules and the files.

Pure functions on text: the module runs the commands and writes the files. The module owns four chains; each is
jumped to exactly once from its built-in chain, and nothing outside them is touched except those jumps.

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import OrderedDict

# The module's chains, in the order they are shown: name -> (table, built-in chain that jumps to it).
CHAINS = OrderedDict(
    (
        ("HIMN-INPUT", ("filter", "INPUT")),
        ("HIMN-FORWARD", ("filter", "FORWARD")),
        ("HIMN-PREROUTING", ("nat", "PREROUTING")),
        ("HIMN-POSTROUTING", ("nat", "POSTROUTING")),
    )
)
TABLES = ("filter", "nat")
ESTABLISHED = "-m conntrack --ctstate RELATED,ESTABLISHED"
INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")

SYSCTL_KEY = "net.ipv4.ip_forward"
# The module's own comments in the files it edits: the rules file's header, and the start of its sysctl.d comment.
RULES_FILE_MARK = "# xenserver.openstack.himn_nat"
SYSCTL_MARK = "# xenserver.openstack.himn_nat"
RULES_FILE_HEADER = (
    RULES_FILE_MARK + " manages the HIMN-* chains and their jumps in this file.",
    "# netfilter-persistent (package iptables-persistent) restores it at boot.",
)
_PREVIOUS = re.compile(r"ip_forward was (\d) before")
_COUNTERS = re.compile(r"^\[\d+:\d+\]\s*")


class IptablesFormatError(ValueError):
    """Text that should be in iptables-save format is not."""


def table_chains(table):
    """Return the module's chains in ``table``, in display order."""
    return [chain for chain, (owner, _builtin) in CHAINS.items() if owner == table]


def normalize(line):
    """Return an iptables-save line without packet counters and with single spaces.

    Args:
        line: one line of iptables-save output or of a rules file, with or without C([packets:bytes]).

    Returns:
        The line, stripped, counters dropped, whitespace collapsed.
    """
    return " ".join(_COUNTERS.sub("", line.strip()).split())


def render_rules(himn_interface, forward_interfaces, port_forwards, himn_cidr):
    """Return the rules of each of the module's chains, each exactly as iptables-save prints it after C(-A CHAIN).

    Args:
        himn_interface: the compute VM's interface on the HIMN.
        forward_interfaces: interfaces whose networks Dom0 reaches (masqueraded, forwarded both ways).
        port_forwards: dicts with interface, protocol, port, to_address and to_port (all filled in).
        himn_cidr: the HIMN addresses (canonical CIDR) whose traffic is forwarded and masqueraded: Dom0's alone.

    Returns:
        ``{chain: [spec, ...]}`` for every chain in L(CHAINS), without duplicates.
    """
    rules = {chain: [] for chain in CHAINS}

    def add(chain, spec):
        if spec not in rules[chain]:
            rules[chain].append(spec)

    himn = himn_interface
    add("HIMN-INPUT", "-i %s -j ACCEPT" % himn)
    for net in forward_interfaces:
        add("HIMN-FORWARD", "-s %s -i %s -o %s -j ACCEPT" % (himn_cidr, himn, net))
        add("HIMN-FORWARD", "-i %s -o %s %s -j ACCEPT" % (net, himn, ESTABLISHED))
        add("HIMN-POSTROUTING", "-s %s -o %s -j MASQUERADE" % (himn_cidr, net))
    for forward in port_forwards:
        values = dict(forward, himn=himn)
        add(
            "HIMN-PREROUTING",
            "-i %(interface)s -p %(protocol)s -m addrtype --dst-type LOCAL -m %(protocol)s --dport %(port)d "
            "-j DNAT --to-destination %(to_address)s:%(to_port)d" % values,
        )
        add(
            "HIMN-FORWARD",
            "-d %(to_address)s/32 -i %(interface)s -o %(himn)s -p %(protocol)s -m %(protocol)s --dport %(to_port)d "
            "-j ACCEPT" % values,
        )
        if forward["interface"] not in forward_interfaces:
            # The replies; a forwarded network already has them through its HIMN-to-network accept.
            add("HIMN-FORWARD", "-i %s -o %s %s -j ACCEPT" % (himn, forward["interface"], ESTABLISHED))
    return rules


class Table:
    """One table of a rule set: its chains (name -> policy, C(-) for user chains) and rules (chain, spec)."""

    def __init__(self):
        self.chains = {}
        self.rules = []


def _split_rule(line):
    """Split a normalized C(-A CHAIN spec) line into (chain, spec)."""
    parts = line.split(" ", 2)
    if len(parts) < 2:
        raise IptablesFormatError("a rule without a chain: '%s'" % line)
    return parts[1], parts[2] if len(parts) == 3 else ""


def parse_save(text):
    """Parse iptables-save output (counters or not) into tables.

    Args:
        text: the output of C(iptables-save) or the content of a rules file.

    Returns:
        ``{table name: Table}`` for every table the text holds.

    Raises:
        IptablesFormatError: a line is neither a comment, a table, a chain, a rule nor COMMIT.
    """
    tables, current = {}, None
    for number, raw in enumerate(text.splitlines(), 1):
        line = normalize(raw)
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], Table())
        elif current is None:
            raise IptablesFormatError("line %d is outside a table: '%s'" % (number, line))
        elif line == "COMMIT":
            current = None
        elif line.startswith(":"):
            name, _sep, rest = line[1:].partition(" ")
            current.chains[name] = rest.partition(" ")[0] if rest else "-"
        elif line.startswith("-A "):
            current.rules.append(_split_rule(line))
        else:
            raise IptablesFormatError("line %d is not in iptables-save format: '%s'" % (number, line))
    return tables


class View:
    """What of the module's is in one table: its chains' rules (None: chain missing) and how often each is jumped to."""

    def __init__(self, table_name, table):
        self.rules = {}
        self.jumps = {}
        self.foreign_references = []
        for chain in table_chains(table_name):
            self.rules[chain] = [] if chain in table.chains else None
            self.jumps[chain] = 0
        for chain, spec in table.rules:
            if chain in self.rules:
                if self.rules[chain] is None:  # rules of an undeclared chain (a hand-written file)
                    self.rules[chain] = []
                self.rules[chain].append(spec)
                continue
            target = _jump_target(spec)
            if target in self.jumps:
                if chain == CHAINS[target][1] and spec == "-j " + target:
                    self.jumps[target] += 1
                else:
                    self.foreign_references.append("-t %s -A %s %s" % (table_name, chain, spec))


def _jump_target(spec):
    """Return the chain a rule spec jumps or goes to, or None."""
    words = spec.split(" ")
    for flag in ("-j", "-g", "--jump", "--goto"):
        if flag in words:
            index = words.index(flag)
            if index + 1 < len(words):
                return words[index + 1]
    return None


def _minus(items, others):
    """Return the items not matched one for one in others, in their order (a multiset difference)."""
    left = list(others)
    result = []
    for item in items:
        if item in left:
            left.remove(item)
        else:
            result.append(item)
    return result


def show(table_name, rules, jumps):
    """Return the module's part of a table as iptables-restore text (empty when it has nothing there).

    Args:
        table_name: filter or nat.
        rules: ``{chain: [spec, ...] or None}``.
        jumps: ``{chain: count}`` of the jumps from the built-in chains.
    """
    lines = [":%s - [0:0]" % chain for chain in table_chains(table_name) if rules.get(chain) is not None]
    for chain in table_chains(table_name):
        lines += ["-A %s -j %s" % (CHAINS[chain][1], chain)] * jumps.get(chain, 0)
    for chain in table_chains(table_name):
        lines += ["-A %s %s" % (chain, spec) for spec in rules.get(chain) or []]
    if not lines:
        return ""
    return "\n".join(["*" + table_name] + lines + ["COMMIT"]) + "\n"


def desired_show(desired):
    """Return the module's part of the whole rule set, as it is once ``desired`` ({chain: specs} or None) holds."""
    return "".join(
        show(
            name,
            {chain: desired[chain] for chain in table_chains(name)} if desired else {},
            {chain: 1 for chain in table_chains(name)} if desired else {},
        )
        for name in TABLES
    )


def managed_lines(desired):
    """Return the module's rules and jumps as C(-t TABLE -A CHAIN spec) lines (empty for None)."""
    if not desired:
        return []
    lines = []
    for name in TABLES:
        lines += ["-t %s -A %s -j %s" % (name, CHAINS[chain][1], chain) for chain in table_chains(name)]
        for chain in table_chains(name):
            lines += ["-t %s -A %s %s" % (name, chain, spec) for spec in desired[chain]]
    return lines


class LivePlan:
    """The change to the live rule set: the iptables-restore --noflush script and what it adds and removes."""

    def __init__(self):
        self.script = ""
        self.added = []
        self.removed = []
        self.before = ""
        self.after = ""


def plan_live(tables, desired, same=None):
    """Plan the change of the live rule set.

    Args:
        tables: ``parse_save(iptables-save output)``.
        desired: ``{chain: [spec, ...]}`` for every chain of L(CHAINS) (state present), or None (state absent).
        same: optional ``same(table, chain, specs)`` telling whether a live chain whose text differs holds these
            rules all the same (``iptables -C``: another iptables version may print a rule otherwise).

    Returns:
        A LivePlan; its script is empty when nothing is to be done.

    Raises:
        IptablesFormatError: state absent, and rules outside the module's own jumps still use its chains.
    """
    plan, script = LivePlan(), []
    for name in TABLES:
        view = View(name, tables.get(name) or Table())
        plan.before += show(name, view.rules, view.jumps)
        if desired is None:
            lines = _absent_lines(name, view, plan)
        else:
            lines = _present_lines(name, view, desired, same, plan)
        if lines:
            script += ["*" + name] + lines + ["COMMIT"]
    plan.after = desired_show(desired)
    plan.script = "\n".join(script) + "\n" if script else ""
    return plan


def _present_lines(name, view, desired, same, plan):
    declare, body, jumps = [], [], []
    added, removed, jumps_added, jumps_removed = [], [], [], []
    for chain in table_chains(name):
        want, have, builtin = desired[chain], view.rules[chain], CHAINS[chain][1]
        if have is None:
            declare.append(":%s - [0:0]" % chain)
            body += ["-A %s %s" % (chain, spec) for spec in want]
            added += ["-t %s -A %s %s" % (name, chain, spec) for spec in want]
        elif have != want and not (same and len(have) == len(want) and same(name, chain, want)):
            body.append("-F " + chain)
            body += ["-A %s %s" % (chain, spec) for spec in want]
            added += ["-t %s -A %s %s" % (name, chain, spec) for spec in _minus(want, have)]
            removed += ["-t %s -A %s %s" % (name, chain, spec) for spec in _minus(have, want)]
        jump = "-t %s -A %s -j %s" % (name, builtin, chain)
        if view.jumps[chain] == 0:
            jumps.append("-I %s 1 -j %s" % (builtin, chain))
            jumps_added.append(jump)
        for _extra in range(view.jumps[chain] - 1):
            jumps.append("-D %s -j %s" % (builtin, chain))
            jumps_removed.append(jump)
    # Jumps are listed first (as managed_lines does); the script needs the chains before the jumps to them.
    plan.added += jumps_added + added
    plan.removed += jumps_removed + removed
    return declare + body + jumps


def _absent_lines(name, view, plan):
    if view.foreign_references and any(rules is not None for rules in view.rules.values()):
        raise IptablesFormatError(
            "rules other than the module's own jumps use its chains: %s. Remove them first; nothing was changed."
            % "; ".join(view.foreign_references)
        )
    lines = []
    for chain in table_chains(name):
        builtin = CHAINS[chain][1]
        lines += ["-D %s -j %s" % (builtin, chain)] * view.jumps[chain]
        plan.removed += ["-t %s -A %s -j %s" % (name, builtin, chain)] * view.jumps[chain]
    for chain in table_chains(name):
        if view.rules[chain] is not None:
            lines += ["-F " + chain, "-X " + chain]
            plan.removed += ["-t %s -A %s %s" % (name, chain, spec) for spec in view.rules[chain]]
    return lines


def _classify(table_name, line):
    """Return 'decl', 'jump' or 'rule' for a normalized line that is the module's in ``table_name``, else None."""
    ours = table_chains(table_name)
    if line.startswith(":"):
        return "decl" if line[1:].partition(" ")[0] in ours else None
    if line.startswith("-A "):
        chain, spec = _split_rule(line)
        if chain in ours:
            return "rule"
        target = _jump_target(spec)
        if target in ours and chain == CHAINS[target][1] and spec == "-j " + target:
            return "jump"
    return None


def _file_sections(lines):
    """Return [(table, index of *table, index of COMMIT)] of a rules file, or raise IptablesFormatError."""
    sections, start = [], None
    for index, raw in enumerate(lines):
        line = normalize(raw)
        if line.startswith("*"):
            if start is not None:
                raise IptablesFormatError("line %d starts a table before line %d's table ends" % (index + 1, start + 1))
            start = index
        elif line == "COMMIT":
            if start is None:
                raise IptablesFormatError("line %d: COMMIT outside a table" % (index + 1))
            sections.append((normalize(lines[start])[1:], start, index))
            start = None
    if start is not None:
        raise IptablesFormatError("the table started at line %d has no COMMIT" % (start + 1))
    return sections


def plan_rules_file(text, desired):
    """Return the rules file with the module's part made as ``desired`` says, everything else as it was.

    The file is left as it is (same text) when its part is already right, whatever the counters, comments, order of
    other lines or position of the jumps. Otherwise the module's lines are taken out and written back after the
    table's chain declarations, so each jump is the first rule of its built-in chain (as the live rules have them).

    Args:
        text: the current file ('' when there is none).
        desired: ``{chain: [spec, ...]}`` (state present) or None (state absent).

    Returns:
        The new text, or None when the file should not exist (state absent and nothing but the module's lines in it).

    Raises:
        IptablesFormatError: the file is not in iptables-save format.
    """
    parse_save(text)
    lines = text.splitlines()
    sections = _file_sections(lines)
    if _file_view(lines, sections) == _wanted_view(desired):
        return text
    ours = set()
    for name, start, end in sections:
        ours.update(index for index in range(start + 1, end) if _classify(name, normalize(lines[index])))
    if desired is None:
        drop = set(ours)
        for _name, start, end in sections:
            inner = range(start + 1, end)
            only_ours = all(index in ours or not lines[index].strip() for index in inner)
            if only_ours and any(index in ours for index in inner):
                drop.update(range(start, end + 1))  # a table that held nothing but the module's lines
        kept = [line for index, line in enumerate(lines) if index not in drop and line not in RULES_FILE_HEADER]
        if not any(line.strip() for line in kept):
            return None
        return "\n".join(kept) + "\n"
    kept = [line for index, line in enumerate(lines) if index not in ours]
    if not text.strip():
        kept = list(RULES_FILE_HEADER)
    for name in TABLES:
        block = show(name, {c: desired[c] for c in table_chains(name)}, dict.fromkeys(table_chains(name), 1))
        block_lines = block.splitlines()[1:-1]
        section = next(((s, e) for n, s, e in _file_sections(kept) if n == name), None)
        if section is None:
            kept += block.splitlines()
            continue
        start, end = section
        at = start + 1
        for index in range(start + 1, end):
            if normalize(kept[index]).startswith(":"):
                at = index + 1
        kept[at:at] = block_lines
    return "\n".join(kept) + "\n"


def _rule_chain(line):
    """The chain of a C(-A CHAIN spec) line."""
    return _split_rule(line)[0]


def _file_view(lines, sections):
    view = {}
    for name, start, end in sections:
        if name not in TABLES:
            continue
        entry = view.setdefault(name, {"decl": [], "jump": [], "rule": []})
        for index in range(start + 1, end):
            line = normalize(lines[index])
            kind = _classify(name, line)
            if kind == "decl":
                entry[kind].append(line[1:].partition(" ")[0])
            elif kind:
                entry[kind].append(line)
    for name in list(view):
        entry = view[name]
        entry["decl"].sort()
        entry["jump"].sort()
        # Only the order within each chain matters.
        entry["rule"] = sorted(entry["rule"], key=_rule_chain)
        if not any(entry.values()):
            del view[name]
    return view


def _wanted_view(desired):
    if desired is None:
        return {}
    view = {}
    for name in TABLES:
        chains = table_chains(name)
        view[name] = {
            "decl": sorted(chains),
            "jump": sorted("-A %s -j %s" % (CHAINS[chain][1], chain) for chain in chains),
            "rule": sorted(
                ("-A %s %s" % (chain, spec) for chain in chains for spec in desired[chain]),
                key=_rule_chain,
            ),
        }
    return view


def sysctl_settings(text):
    """Return [(line index, key, value)] of the settings in a sysctl.d file (keys with dots, values stripped)."""
    settings = []
    for index, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        settings.append((index, key.strip().lstrip("-").replace("/", "."), value.strip()))
    return settings


def recorded_ip_forward(text):
    """Return the ip_forward value the module recorded in its sysctl.d comment before it first set it, or None."""
    for line in text.splitlines():
        if line.startswith(SYSCTL_MARK):
            match = _PREVIOUS.search(line)
            if match:
                return match.group(1)
    return None


def plan_sysctl_file(text, present, previous):
    """Return the sysctl.d file with ip_forward on (present) or the module's setting taken out (absent).

    Only the module's lines change: its comment (which records the value ip_forward had before, so that state absent
    can give it back) and the C(net.ipv4.ip_forward) setting. A setting the module did not write is left alone on
    state absent.

    Args:
        text: the current file ('' when there is none).
        present: True for state present.
        previous: the runtime value of ip_forward before the module changed it, for the comment.

    Returns:
        The new text (the same text when nothing is to change), or None when the file should not exist.
    """
    lines = text.splitlines()
    forward = [(index, value) for index, key, value in sysctl_settings(text) if key == SYSCTL_KEY]
    marks = [index for index, line in enumerate(lines) if line.startswith(SYSCTL_MARK)]
    drop = set(marks) | {index for index, _value in forward}
    if present:
        if len(forward) == 1 and forward[0][1] == "1":
            return text
        recorded = recorded_ip_forward(text) or previous
        kept = [line for index, line in enumerate(lines) if index not in drop]
        kept += [
            "%s: Dom0's traffic from the HIMN is forwarded (ip_forward was %s before)" % (SYSCTL_MARK, recorded),
            "%s = 1" % SYSCTL_KEY,
        ]
        return "\n".join(kept) + "\n"
    if not marks:
        return text
    kept = [line for index, line in enumerate(lines) if index not in drop]
    if not any(line.strip() for line in kept):
        return None
    return "\n".join(kept) + "\n"
