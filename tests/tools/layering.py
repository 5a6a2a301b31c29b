#!/usr/bin/env python3
"""Checks the layering rules of keyway's crates (docs/architecture.md, "Rules that keep it so"):

1. no module cycles: at every level of a crate's module tree, the modules under one parent
   (files and folders) must not reach each other in a circle through `crate::`, `super::` or
   `self::` paths outside test code;
2. size: no source file has more than MAX_LINES lines of code outside its tests;
3. protocol code never sees HTTP: the modules named in HTTP_FREE (the issuer's `oauth` and
   `directory`) name no HTTP crate (axum, http, hyper, tower…) and none of the crate's HTTP-side
   modules (the issuer's `http`, `state`, `endpoints`, `app`), in their tests too. The baseline
   cannot admit this one.

usage: layering.py [--baseline FILE] [CRATE_DIR ...]
                   (default: every crate of the workspace that has a src/)
Prints every violation and exits 1 if there is any that the baseline does not list. The baseline
(tests/tools/layering-baseline.txt) lists the problems that existed when the check was added and
are being removed; a new cycle, a cycle that gains a member, a listed file that grows, or a
baseline entry that no longer occurs fails the check. Test code (`#[cfg(test)]` items, `tests.rs`
files, modules declared under `#[cfg(test)]`) does not count.
"""
import os
import re
import sys

MAX_LINES = 600
DEFAULT_CRATES = ["api", "cli", "contract", "issuer", "kit", "oidc", "operator", "proxy",
                  "tests/fake-apiserver"]

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"

# Crate folder name -> (modules that must not see HTTP, the crate's own modules that are HTTP).
HTTP_FREE = {"issuer": (["oauth", "directory"], ["http", "state", "endpoints", "app"])}
HTTP_CRATES = ["axum", "axum_extra", "http", "http_body", "http_body_util", "hyper", "hyper_util",
               "tower", "tower_http"]


def strip_comments_and_strings(src):
    """Source with comments and string/char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("".join(ch if ch == "\n" else " " for ch in src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 8]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append("".join(ch if ch == "\n" else " " for ch in src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j = min(n, j + 1)
            out.append("".join(ch if ch == "\n" else " " for ch in src[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", src[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", src[i:i + 4])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def item_end(src, start):
    """End of the item starting at `start`: after its matching `}` or its `;`."""
    depth = 0
    for j in range(start, len(src)):
        ch = src[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j + 1
        elif ch == ";" and depth == 0:
            return j + 1
    return len(src)


def strip_cfg_test(src):
    """Source without `#[cfg(test)]` items; also the names of `mod x;` declared under it."""
    test_mods = set()
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", src):
        if m.start() < i:
            continue
        out.append(src[i:m.start()])
        rest = src[m.end():]
        d = re.match(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", rest)
        if d:
            test_mods.add(d.group(1))
        end = item_end(src, m.end())
        out.append("".join(ch for ch in src[m.start():end] if ch == "\n"))
        i = end
    out.append(src[i:])
    return "".join(out), test_mods


def expand_paths(text):
    """`a::{b, c::{d, e}}` paths, expanded to lists of segments."""
    text = text.strip()
    if not text:
        return []
    m = re.match(r"((?:" + IDENT + r"\s*::\s*)*)\{(.*)\}$", text, re.S)
    if m:
        prefix = [s.strip() for s in m.group(1).split("::") if s.strip()]
        inner, parts, depth, cur = m.group(2), [], 0, ""
        for ch in inner:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        parts.append(cur)
        return [prefix + p for part in parts for p in expand_paths(part)]
    segs = re.findall(IDENT, text.split(" as ")[0])
    return [segs] if segs else []


def references(code):
    """Every `crate::`, `super::` or `self::` path in code, as (anchor, segments)."""
    refs = []
    for m in re.finditer(r"\b(crate|super|self)\s*::\s*", code):
        anchor, j = m.group(1), m.end()
        supers = 0
        while anchor == "super" and re.match(r"super\s*::\s*", code[j:]):
            supers += 1
            j += re.match(r"super\s*::\s*", code[j:]).end()
        if code[j:j + 1] == "{":
            end = item_end(code, j)
            body = code[j:end]
            for segs in expand_paths(body):
                refs.append((anchor, supers, segs))
        else:
            seg = re.match(r"(" + IDENT + r")(\s*::\s*" + IDENT + r")*", code[j:])
            if seg:
                refs.append((anchor, supers, re.findall(IDENT, seg.group(0))))
    return refs


def crate_modules(src_dir):
    """Module path (tuple) -> file, for every non-test module file under src/."""
    mods = {}
    for root, _, files in os.walk(src_dir):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src_dir)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("lib", "main") and len(parts) == 1:
                continue
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts and parts[-1] in ("tests",) or any(p.endswith("_tests") for p in parts):
                continue
            mods[tuple(parts)] = os.path.join(root, f)
    return mods


def analyse(crate_dir):
    src_dir = os.path.join(crate_dir, "src")
    mods = crate_modules(src_dir)
    code_of, test_children = {}, {}
    for path, f in mods.items():
        with open(f, encoding="utf-8", errors="replace") as fh:
            code, tmods = strip_cfg_test(strip_comments_and_strings(fh.read()))
        code_of[path] = code
        test_children[path] = tmods
    for root_file in ("lib.rs", "main.rs"):
        p = os.path.join(src_dir, root_file)
        if os.path.exists(p):
            with open(p, encoding="utf-8", errors="replace") as fh:
                _, tmods = strip_cfg_test(strip_comments_and_strings(fh.read()))
            test_children.setdefault((), set()).update(tmods)
    # Drop modules declared under #[cfg(test)] (and everything below them).
    test_paths = {parent + (child,) for parent, names in test_children.items() for child in names}
    for path in list(mods):
        if any(path[:len(t)] == t for t in test_paths):
            del mods[path]
            code_of.pop(path, None)

    def resolve(from_path, is_dir_module, anchor, supers, segs):
        if anchor == "crate":
            base = ()
        else:
            # A file module's `self` is itself; `super` is its parent.
            base = from_path
            if anchor == "super":
                base = base[:max(0, len(base) - 1 - supers)]
        full = base + tuple(segs)
        for k in range(len(full), 0, -1):
            if full[:k] in mods:
                return full[:k]
        return None

    edges = {p: set() for p in mods}
    for path, code in code_of.items():
        is_dir = mods[path].endswith("mod.rs")
        for anchor, supers, segs in references(code):
            target = resolve(path, is_dir, anchor, supers, segs)
            if target is not None and target != path:
                edges[path].add(target)
    return mods, code_of, edges


def sibling_cycles(mods, edges):
    """Circles among the children of each module (the crate root included)."""
    parents = {p[:-1] for p in mods} | {()}
    found = []
    for parent in sorted(parents):
        children = sorted({p[:len(parent) + 1] for p in mods if len(p) > len(parent) and p[:len(parent)] == parent})
        if len(children) < 2:
            continue
        graph = {c: set() for c in children}
        for src, targets in edges.items():
            if len(src) <= len(parent) or src[:len(parent)] != parent:
                continue
            a = src[:len(parent) + 1]
            for t in targets:
                if len(t) > len(parent) and t[:len(parent)] == parent:
                    b = t[:len(parent) + 1]
                    if a != b:
                        graph[a].add(b)
        for comp in strongly_connected(graph):
            if len(comp) > 1:
                found.append((parent, sorted(comp)))
    return found


def strongly_connected(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def code_lines(code):
    return sum(1 for line in code.splitlines() if line.strip())


def http_uses(crate, mods):
    """Where a module of HTTP_FREE[crate] names an HTTP crate or an HTTP-side module: (module
    path, what it names). Comments and strings do not count; tests do."""
    free, http_side = HTTP_FREE.get(os.path.basename(os.path.normpath(crate)), ([], []))
    found = set()
    external = re.compile(r"(?<![A-Za-z0-9_:])(?:::\s*)?(" + "|".join(HTTP_CRATES) + r")\s*::")
    for path, file in mods.items():
        if not path or path[0] not in free:
            continue
        with open(file, encoding="utf-8", errors="replace") as fh:
            code = strip_comments_and_strings(fh.read())
        for m in external.finditer(code):
            # `crate::http::…` is a module of the crate, checked below through the edges.
            before = code[:m.start()].rstrip()
            if not re.search(r"(crate|super|self)\s*::\s*$", before):
                found.add((path, m.group(1)))
        for anchor, supers, segs in references(code):
            base = () if anchor == "crate" else path
            if anchor == "super":
                base = base[:max(0, len(base) - 1 - supers)]
            target = base + tuple(segs)
            if target and target[0] in http_side:
                found.add((path, "crate::" + target[0]))
    return sorted(found)


def check(crates):
    """Problems found: (key, message). A cycle's key is its crate, parent and members; a size
    problem's key is its file and its line count."""
    found = []
    for crate in crates:
        mods, code_of, edges = analyse(crate)
        for parent, comp in sibling_cycles(mods, edges):
            where = "::".join(parent) or "crate root"
            names = ", ".join("::".join(c) for c in comp)
            found.append((("cycle", f"{crate} {where}: {names}"),
                          f"{crate}: module cycle under {where}: {names}"))
        for path, what in http_uses(crate, mods):
            name = "::".join(path)
            found.append((("http", f"{crate} {name}: {what}"),
                          f"{crate}: {name} names {what}, but {path[0]} never sees HTTP"))
        for path, code in sorted(code_of.items()):
            n = code_lines(code)
            if n > MAX_LINES:
                rel = os.path.relpath(mods[path])
                found.append((("size", rel, n),
                              f"{crate}: {rel} has {n} lines of code outside tests (budget {MAX_LINES})"))
    return found


def read_baseline(path):
    """Known problems, one per line: `cycle CRATE PARENT: A, B, ...` or `size FILE LINES` (the
    file may not grow past LINES). Blank lines and `#` comments are skipped."""
    cycles, sizes = set(), {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kind, _, rest = line.partition(" ")
            if kind == "cycle":
                cycles.add(rest)
            elif kind == "size":
                file, _, lines = rest.rpartition(" ")
                sizes[file] = int(lines)
            else:
                raise SystemExit(f"{path}: not a baseline line: {line!r}")
    return cycles, sizes


def main(argv):
    baseline = None
    if argv[:1] == ["--baseline"]:
        baseline, argv = argv[1], argv[2:]
    crates = argv or [c for c in DEFAULT_CRATES if os.path.isdir(os.path.join(c, "src"))]
    found = check(crates)
    cycles, sizes = read_baseline(baseline) if baseline else (set(), {})
    problems, known = [], []
    for key, message in found:
        if key[0] == "cycle" and key[1] in cycles:
            cycles.discard(key[1])
            known.append(message)
        elif key[0] == "size" and key[1] in sizes and key[2] <= sizes[key[1]]:
            sizes.pop(key[1])
            known.append(message)
        else:
            problems.append(message)
    # A baseline entry that no longer occurs is stale: shrink the baseline with the code.
    problems += [f"{baseline}: `cycle {c}` no longer occurs; remove it" for c in sorted(cycles)]
    problems += [f"{baseline}: `size {f} {n}` no longer occurs (or the file shrank); update it"
                 for f, n in sorted(sizes.items()) if not any(k[0] == "size" and k[1] == f for k, _ in found)]
    for m in known:
        print(f"known (baseline): {m}")
    for p in problems:
        print(p)
    print(f"layering: {len(crates)} crates checked, {len(problems)} problem(s), {len(known)} known")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
