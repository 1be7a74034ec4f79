"""What each function crate's code can reach, for the drift tests.

A name-level call graph of `shared/src` (every `fn` with a body is a node;
an edge is a call by path `module::f`, a call of a free function defined in
the same module or defined only once in the crate, or the use of a type whose
methods then count as reached). It over-approximates (a name collision adds
an edge, never removes one), so what it derives is a superset of what runs.

From the reached code it derives the settings variables read (a `Settings`
field used, mapped to the variable `config.rs` loads it from). Permissions
are not derived here: infra/tests/permissions.py proves them from what the
tests used.
"""

import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared/src"
# The storage port and its adapters implement the primitives; they are not a
# function's code path.
PORT_MODULES = {"store", "dynamo", "embedded", "cursor", "testing", "config", "limits", "capacity"}


def strip_code(t):
    """Blanks comments and string/char literals (so braces balance) and drops the tests module."""
    i = t.find("#[cfg(test)]")
    if i >= 0:
        t = t[:i]
    t = re.sub(r'(?<![\w"])r(#*)"(?:.|\n)*?"\1', lambda m: " " * len(m.group(0)), t)
    t = re.sub(r'"(?:\\.|[^"\\])*"', lambda m: '"' + " " * (len(m.group(0)) - 2) + '"', t, flags=re.S)
    t = re.sub(r"'(?:\\.|[^'\\])'", "' '", t)
    return re.sub(r"//[^\n]*", "", t)


def _block_end(t, start):
    depth = 0
    for i in range(start, len(t)):
        if t[i] == "{":
            depth += 1
        elif t[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(t)


def _fns(t):
    """(impl type or None, fn name, body) of every fn with a body."""
    impls = []
    for m in re.finditer(r"\bimpl\b[^{;]*?(?:\bfor\s+)?(\w+)\s*(?:<[^{;]*>)?\s*(?:where[^{]*)?\{", t):
        impls.append((m.end() - 1, _block_end(t, m.end() - 1), m.group(1)))
    for m in re.finditer(r"\bfn\s+(\w+)", t):
        brace, semi = t.find("{", m.end()), t.find(";", m.end())
        if brace < 0 or 0 <= semi < brace:
            continue
        owner = next((o for s, e, o in impls if s < m.start() < e), None)
        yield owner, m.group(1), t[brace:_block_end(t, brace) + 1]


def shared_graph():
    """{(module, impl type or None, fn): body} for shared/src."""
    nodes = {}
    for p in sorted(SHARED.rglob("*.rs")):
        parts = p.relative_to(SHARED).parts
        module = parts[-2] if parts[-1] == "mod.rs" else parts[-1][:-3]
        for owner, name, body in _fns(strip_code(p.read_text())):
            nodes[(module, owner, name)] = body
    return nodes


@functools.lru_cache(maxsize=None)
def _patterns(m, owner, name):
    """The compiled patterns of a node's uses (compiled once: `re`'s own
    cache holds 512 patterns, far fewer than the graph's nodes)."""
    if owner is None:
        return (
            re.compile(rf"\b(?:{m}|super)::{name}\b"),
            re.compile(rf"(?<![\w:.]){name}\s*(?:::<|\()"),
        )
    return (re.compile(rf"\b{owner}\b"), re.compile(rf"\.{name}\s*\("))


def _edges(text, module, nodes, free):
    out = set()
    for node in nodes:
        m, owner, name = node
        qualified, bare = _patterns(m, owner, name)
        if owner is None:
            local = m == module or len(free[name]) == 1
            if qualified.search(text) or (local and bare.search(text)):
                out.add(node)
        elif qualified.search(text) or (m == module and bare.search(text)):
            out.add(node)
    return out


def crate_source(crate):
    return "".join(strip_code(p.read_text()) for p in sorted((ROOT / "functions" / crate / "src").rglob("*.rs")))


def reached(src, nodes):
    free = {}
    for m, owner, name in nodes:
        if owner is None:
            free.setdefault(name, set()).add(m)
    seen, todo = set(), list(_edges(src, None, nodes, free))
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(_edges(nodes[n], n[0], nodes, free) - seen)
    return seen


def settings_env():
    """Settings field -> the variable config.rs overrides it from."""
    cfg = (SHARED / "config.rs").read_text()
    return {f: v for v, f in re.findall(r'get\("([A-Z0-9_]+)"\)\s*\{\s*self\.(\w+)', cfg)}


class CratePaths:
    def __init__(self, crate, nodes=None):
        nodes = nodes if nodes is not None else shared_graph()
        self.src = crate_source(crate)
        self.reached = reached(self.src, nodes)
        self.bodies = [self.src] + [nodes[n] for n in self.reached if n[0] not in PORT_MODULES]

    def settings_vars(self):
        return {v for f, v in settings_env().items() if any(re.search(rf"\.{f}\b", b) for b in self.bodies)}
