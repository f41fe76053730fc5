#!/usr/bin/env python3
"""Checks cachegate's module layering (ARCHITECTURE.md): imports point one way, no file cycles.

Reads every `crate::…` and `super::…` path in src/ (outside `#[cfg(test)]` blocks), resolves it
to the file that defines the module, and then
  1. fails when a module imports a module of its own layer or of a higher one (LAYERS below);
  2. fails when the file graph has a cycle (Tarjan's strongly connected components).
`--graph` prints the module graph (edges with counts) instead of checking, `--files` the file graph.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Top-level module -> layer. A module may import only modules of a strictly lower layer.
LAYERS = {
    "util": 0, "diag": 0, "metrics": 0,
    # The compiled configuration and its evaluation never see the parse model; the parse model
    # may use runtime's value types (Scope, ExpiryDate, MessageTarget, the condition language).
    "runtime": 1,
    "policy": 2,
    # The access log's formatting and writer: runtime's settings in, lines out.
    "access_log": 2,
    "config": 3, "cache": 3,
    "engine": 4, "reload": 4,
    "proxy": 5, "admin": 5, "watch": 5,
    "server": 6, "main": 7, "lib": 7,
}

PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{", re.S)


def rust_files():
    for root, _, files in os.walk(SRC):
        for f in files:
            if f.endswith(".rs"):
                yield os.path.relpath(os.path.join(root, f), SRC)


def module_path(rel):
    """`cache/key.rs` -> ['cache', 'key']; `cache/mod.rs` -> ['cache']; `lib.rs` -> []."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts == ["lib"]:
        return []
    return parts


def strip_tests(text):
    """Drops `#[cfg(test)]` items (tests may import anything) and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = j + len("#[cfg(test)]")
        semi, brace = text.find(";", k), text.find("{", k)
        if brace < 0 or (0 <= semi < brace):
            i = semi + 1
            continue
        depth, p = 0, brace
        while p < len(text):
            if text[p] == "{":
                depth += 1
            elif text[p] == "}":
                depth -= 1
                if depth == 0:
                    break
            p += 1
        i = p + 1
    return "".join(out)


def expand_groups(text):
    """Yields module paths from `use crate::a::{b::c, d}` groups (nested groups included)."""
    for m in USE_GROUP_RE.finditer(text):
        start = m.end()
        depth, p = 1, start
        while p < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[p], 0)
            p += 1
        body = text[start:p - 1]
        base = [m.group(1)] + [s for s in m.group(2).split("::") if s]
        for item in split_top(body):
            yield from expand_item(base, item.strip())


def split_top(body):
    depth, cur, items = 0, "", []
    for ch in body:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    items.append(cur)
    return [i for i in items if i.strip()]


def expand_item(base, item):
    if "{" in item:
        head, rest = item.split("{", 1)
        head = [s for s in head.strip().rstrip(":").split("::") if s]
        for sub in split_top(rest.rsplit("}", 1)[0]):
            yield from expand_item(base + head, sub.strip())
    else:
        item = item.split(" as ")[0].strip()
        yield base + [s for s in item.split("::") if s and s != "self"]


def resolve(segments, here, modules):
    """The longest known module that `segments` (starting with crate/super) names."""
    if segments[0] == "crate":
        path = segments[1:]
    else:
        path = list(here)
        for s in segments:
            if s == "super":
                path = path[:-1]
            else:
                path.append(s)
    best = None
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in modules:
            best = tuple(path[:n])
            break
    return best


TEST_MOD_RE = re.compile(
    r'#\[cfg\(test\)\]\s*(?:#\[path\s*=\s*"([^"]+)"\]\s*)?(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;'
)


def test_only_files(files):
    """Files compiled only for tests: `#[cfg(test)] mod x;` (or with `#[path]`) and below."""
    out = set()
    for f in files:
        text = open(os.path.join(SRC, f), encoding="utf-8").read()
        base = os.path.dirname(f)
        stem = os.path.basename(f)[:-3]
        own_dir = base if stem in ("mod", "lib", "main") else os.path.join(base, stem)
        for m in TEST_MOD_RE.finditer(text):
            if m.group(1):
                out.add(os.path.normpath(os.path.join(base, m.group(1))))
            else:
                out.add(os.path.join(own_dir, m.group(2) + ".rs"))
                out.add(os.path.join(own_dir, m.group(2), "mod.rs"))
    # Everything inside a test-only module's folder is test-only too.
    dirs = {os.path.dirname(t) for t in out if t.endswith("mod.rs")}
    return {f for f in files if f in out or any(f.startswith(d + os.sep) for d in dirs)}


def graph():
    files = list(rust_files())
    tests_only = test_only_files(files)
    modules = {tuple(module_path(f)): f for f in files}
    edges = {}
    for f in files:
        if f in tests_only:
            continue
        here = module_path(f)
        # `super` in a non-mod file is relative to the file's own module's parent.
        text = strip_tests(open(os.path.join(SRC, f), encoding="utf-8").read())
        targets = []
        for m in PATH_RE.finditer(text):
            if m.group(2) == "::{":
                continue
            targets.append([m.group(1)] + [s for s in m.group(2).split("::") if s])
        targets.extend(expand_groups(text))
        for t in targets:
            to = resolve(t, here, modules)
            if to is None or list(to) == here:
                continue
            # A file's own submodules are its children, not imports.
            if list(to[:len(here)]) == here and len(to) > len(here) and f.endswith(("mod.rs", "lib.rs")):
                continue
            edges.setdefault(f, {}).setdefault(modules[to], 0)
            edges[f][modules[to]] += 1
    return files, edges


def top(f):
    p = module_path(f)
    return p[0] if p else "lib"


def sccs(nodes, edges):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    files, edges = graph()
    if "--files" in sys.argv:
        for f in sorted(edges):
            print(f, "->", ", ".join(sorted(edges[f])))
        return 0
    mod_edges = {}
    for f, ts in edges.items():
        for t, c in ts.items():
            a, b = top(f), top(t)
            if a != b:
                mod_edges[(a, b)] = mod_edges.get((a, b), 0) + c
    if "--graph" in sys.argv:
        for (a, b), c in sorted(mod_edges.items()):
            print(f"{a} -> {b} ({c})")
        return 0
    problems = []
    for f, ts in sorted(edges.items()):
        for t in sorted(ts):
            a, b = top(f), top(t)
            if a == b:
                continue
            la, lb = LAYERS.get(a), LAYERS.get(b)
            if la is None or lb is None:
                problems.append(f"{f}: module `{a if la is None else b}` has no layer in scripts/layers.py")
            elif lb >= la:
                problems.append(f"{f} imports {t}: layer `{b}` ({lb}) is not below `{a}` ({la})")
    for comp in sccs(sorted(files), edges):
        problems.append("import cycle between files: " + " <-> ".join(comp))
    for p in problems:
        print(p)
    if problems:
        print(f"layers: {len(problems)} problem(s); see ARCHITECTURE.md")
        return 1
    print(f"layers: {len(files)} files, {sum(len(t) for t in edges.values())} file imports, one way, no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
