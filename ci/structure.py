#!/usr/bin/env python3
"""Structure checks for the workspace, dependency-free (Python 3.11+).

  sizes      no non-test source file under a crate's src/ is longer than 600 lines
  cycles     no import circle between modules (use declarations and inline
             crate::/super::/self::/child-module paths, each resolved to the module
             that DEFINES the name, following re-exports)
  reexports  a module imports a name from the module that defines it, not through
             a re-export in lib.rs or a mod.rs (when the defining module is reachable)

Usage: python3 ci/structure.py [--root DIR] [--only sizes|cycles|reexports] [--json]
Exit status 1 when any check finds a violation.

This reads source text, not the compiler's view: features are all taken as on,
`#[cfg(test)]`/`#[cfg(doctest)]` items are left out, macros are not expanded.

Decisions worth knowing:
- A module's graph node is its file; inline `mod x { }` blocks belong to their file.
- `mod child;` is no edge. A `pub use` re-export is no edge either unless the module's own
  code names what it re-exports: a facade publishes names, it does not depend on them.
  Whoever imports through it gets the edge to the defining module instead.
- `reexports` only reports imports whose defining module the importer could name (every
  module on its path visible); an import through a mod.rs facade over a private child from
  outside is the facade doing its job. `pub use` lines in lib.rs and in a module that has
  child files (mod.rs, or x.rs over x/) are its public surface and are not reported.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINES = 600

# --------------------------------------------------------------------------- lexing

_RAW_STR = re.compile(r'[bc]?r(#*)"')
_IDENT_CHAR = re.compile(r"\w")


def strip_source(src: str) -> str:
    """Blank out comments and the contents of string/char literals, keeping offsets and
    newlines, so that line numbers stay right and `crate::x` inside a string is not code."""
    out = list(src)
    n = len(src)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    i = 0
    while i < n:
        c = src[i]
        nxt = src[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            if nxt == "\\":
                # Escaped char literal: '\n', '\'', '\\', '\u{1F600}'.
                j = src.find("'", i + 3)
                j = n if j < 0 else j
                blank(i + 1, j)
                i = j + 1
            elif i + 2 < n and src[i + 2] == "'" and nxt != "\n":
                blank(i + 1, i + 2)  # 'x'
                i += 3
            else:
                i += 1  # a lifetime or a label: 'a, 'static, 'outer:
        elif _IDENT_CHAR.match(c):
            m = _RAW_STR.match(src, i) if c in "rbc" and (i == 0 or not _IDENT_CHAR.match(src[i - 1])) else None
            if m:
                close = '"' + m.group(1)
                j = src.find(close, m.end())
                j = n if j < 0 else j
                blank(m.end(), j)
                i = j + len(close)
            else:
                j = i + 1
                while j < n and _IDENT_CHAR.match(src[j]):
                    j += 1
                i = j
        else:
            i += 1
    return "".join(out)


_TOKEN = re.compile(
    r"(?P<ident>r#[^\W\d]\w*|[^\W\d]\w*)|(?P<num>\d\w*)|(?P<lt>'[^\W\d]\w*)|(?P<dc>::)|(?P<p>\S)"
)


@dataclass
class Tok:
    text: str
    line: int
    start: int
    end: int
    ident: bool


def tokenize(stripped: str) -> list[Tok]:
    toks = []
    line = 1
    last = 0
    for m in _TOKEN.finditer(stripped):
        line += stripped.count("\n", last, m.start())
        last = m.start()
        text = m.group()
        is_ident = m.lastgroup == "ident"
        if is_ident and text.startswith("r#"):
            text = text[2:]
        toks.append(Tok(text, line, m.start(), m.end(), is_ident))
    return toks


# --------------------------------------------------------------------------- model


@dataclass(eq=False)
class UseLeaf:
    module: "Module"
    segs: list[str]
    alias: str | None
    glob: bool
    line: int
    vis: str  # "" for private, else the visibility text ("pub", "pub(crate)", ...)
    toplevel: bool

    @property
    def name(self) -> str | None:
        if self.glob:
            return None
        return self.alias or self.segs[-1]

    def text(self) -> str:
        s = "::".join(self.segs).replace("::::", "::")
        if self.glob:
            s += "::*"
        if self.alias:
            s += f" as {self.alias}"
        return s


@dataclass(eq=False)
class PathRef:
    module: "Module"
    segs: list[str]
    line: int

    def text(self) -> str:
        return "::".join(self.segs)


@dataclass(eq=False)
class Module:
    name: str
    parent: "Module | None"
    file: Path
    crate: "Crate"
    inline: bool = False
    vis: str = ""  # visibility of its `mod` declaration
    children: dict[str, "Module"] = field(default_factory=dict)
    defined: set[str] = field(default_factory=set)
    bindings: dict[str, UseLeaf] = field(default_factory=dict)
    globs: list[UseLeaf] = field(default_factory=list)
    uses: list[UseLeaf] = field(default_factory=list)
    paths: list[PathRef] = field(default_factory=list)
    idents: set[str] = field(default_factory=set)  # names its own code mentions (not in `use`)

    def ancestors(self):
        m = self
        while m is not None:
            yield m
            m = m.parent

    def is_within(self, other: "Module") -> bool:
        return any(a is other for a in self.ancestors())

    def file_module(self) -> "Module":
        m = self
        while m.inline:
            m = m.parent
        return m


@dataclass(eq=False)
class Crate:
    package: str  # package dir relative to root
    kind: str  # "lib" or "bin NAME"
    root_file: Path
    root: Module | None = None
    modules: list[Module] = field(default_factory=list)
    # `#[macro_export]` macros are named at the crate root but defined where they are written.
    exported_macros: dict[str, Module] = field(default_factory=dict)


@dataclass
class Res:
    kind: str  # "module" | "item" | "extern" | "notfound"
    module: Module | None = None
    name: str | None = None
    via: list = field(default_factory=list)  # [(module, UseLeaf)] re-export hops


EXTERN = "extern"


def _is_test_attr(attr: str) -> bool:
    norm = re.sub(r"\s+", "", attr)
    if norm in ("cfg(test)", "cfg(doctest)"):
        return True
    return norm.startswith("cfg(all(") and re.search(r"[(,](test|doctest)[,)]", norm) is not None


ITEM_KW = {"fn", "struct", "enum", "trait", "type", "const", "static", "union"}
ITEM_START = ITEM_KW | {"mod", "use", "impl", "extern", "macro_rules", "async", "unsafe", "pub"}


class Parser:
    """Loads one crate target: its module tree from the files, with names and references."""

    def __init__(self, root_dir: Path, crate: Crate, sources: dict, test_files: set, real_files: set):
        self.root_dir = root_dir
        self.crate = crate
        self.sources = sources
        self.test_files = test_files
        self.real_files = real_files
        self.loading = [crate.root_file]  # files being loaded, against `#[path]` loops

    def read(self, path: Path):
        if path not in self.sources:
            src = path.read_text(encoding="utf-8")
            self.sources[path] = (src, tokenize(strip_source(src)))
        return self.sources[path]

    def load_root(self):
        m = Module("crate", None, self.crate.root_file, self.crate)
        self.crate.root = m
        self.load_file(m, self.crate.root_file, mod_rs=True)

    def load_file(self, module: Module, path: Path, mod_rs: bool):
        self.real_files.add(path)
        self.crate.modules.append(module)
        src, toks = self.read(path)
        base = path.parent if mod_rs else path.parent / path.stem
        self.walk(module, path, src, toks, base)

    def mark_test_file(self, path: Path, mod_rs: bool):
        """A file only compiled for tests; its own `mod x;` children are test-only too."""
        if path in self.test_files or not path.exists():
            return
        self.test_files.add(path)
        src, toks = self.read(path)
        base = path.parent if mod_rs else path.parent / path.stem
        for i, t in enumerate(toks[:-2]):
            if t.text == "mod" and toks[i + 1].ident and toks[i + 2].text == ";":
                child = self.child_file(base, toks[i + 1].text, None, path)
                if child:
                    self.mark_test_file(child[0], child[1])

    def child_file(self, base: Path, name: str, path_attr: str | None, decl_file: Path):
        if path_attr is not None:
            p = (decl_file.parent / path_attr).resolve()
            return (p, True) if p.exists() else None
        for cand, mod_rs in ((base / f"{name}.rs", False), (base / name / "mod.rs", True)):
            if cand.exists():
                return cand.resolve(), mod_rs
        return None

    # -- token walk

    def walk(self, file_mod: Module, path: Path, src: str, toks: list[Tok], base: Path):
        n = len(toks)
        stack: list[tuple[str, Module | None, Path]] = []  # ("mod", module, base) | ("block", None, base)
        attrs: list[str] = []
        i = 0

        def cur():
            for kind, m, _ in reversed(stack):
                if kind == "mod":
                    return m
            return file_mod

        def cur_base():
            return stack[-1][2] if stack else base

        def toplevel():
            return not stack or stack[-1][0] == "mod"

        while i < n:
            t = toks[i]
            # Attributes: remember them until the item they belong to.
            if t.text == "#" and i + 1 < n and toks[i + 1].text in ("[", "!"):
                j = i + 1 if toks[i + 1].text == "[" else i + 2
                if j < n and toks[j].text == "[":
                    k = self.matching(toks, j)
                    inner = toks[i + 1].text == "!"
                    text = src[toks[j].start + 1 : toks[k].start]
                    if inner and _is_test_attr(text) and toplevel():
                        # `#![cfg(test)]`: the whole module is test-only.
                        m = cur()
                        if m.parent is not None:
                            m.parent.children.pop(m.name, None)
                        if m in self.crate.modules:
                            self.crate.modules.remove(m)
                        if not m.inline:
                            self.test_files.add(path)
                        return
                    if not inner:
                        attrs.append(text)
                    i = k + 1
                    continue
            if attrs and any(_is_test_attr(a) for a in attrs) and t.text in ITEM_START:
                end = self.item_end(toks, i)
                # A test-only `mod x;`: remember its file so the size check skips it.
                j = self.skip_vis(toks, i)
                if j + 2 < n and toks[j].text == "mod" and toks[j + 2].text == ";":
                    pa = self.path_attr(attrs)
                    child = self.child_file(cur_base(), toks[j + 1].text, pa, path)
                    if child:
                        self.mark_test_file(*child)
                attrs = []
                i = end + 1
                continue
            if t.text == "pub":
                i = self.skip_vis(toks, i)
                continue
            m = cur()
            if t.ident:
                m.idents.add(t.text)
            if t.text == "mod" and i + 2 < n and toks[i + 1].ident and toks[i + 2].text in (";", "{"):
                name = toks[i + 1].text
                vis = self.vis_before(toks, i)
                if toks[i + 2].text == ";":
                    child_path = self.child_file(cur_base(), name, self.path_attr(attrs), path)
                    if child_path is None:
                        print(f"warning: {path}:{t.line}: no file for `mod {name};`", file=sys.stderr)
                    if child_path and child_path[0] not in self.loading:
                        cm = Module(name, m, child_path[0], self.crate, vis=vis)
                        m.children[name] = cm
                        self.loading.append(child_path[0])
                        self.load_file(cm, *child_path)
                        self.loading.pop()
                    i += 3
                else:
                    cm = Module(name, m, path, self.crate, inline=True, vis=vis)
                    m.children[name] = cm
                    self.crate.modules.append(cm)
                    stack.append(("mod", cm, cur_base() / name))
                    i += 3
                attrs = []
                continue
            if t.text == "use" and (i == 0 or toks[i - 1].text != "::"):
                j = i + 1
                end = j
                while end < n and toks[end].text != ";":
                    end += 1
                leaves: list[tuple[list[str], str | None, bool, int]] = []
                self.parse_use(toks, j, end, [], leaves)
                vis = self.vis_before(toks, i)
                top = toplevel()
                for segs, alias, glob, line in leaves:
                    if not segs:
                        continue
                    leaf = UseLeaf(m, segs, alias, glob, line, vis, top)
                    m.uses.append(leaf)
                    if top:
                        if glob:
                            m.globs.append(leaf)
                        elif leaf.name != "_":
                            m.bindings[leaf.name] = leaf
                attrs = []
                i = end + 1
                continue
            if t.text == "{":
                stack.append(("block", None, cur_base()))
                attrs = []
            elif t.text == "}":
                if stack:
                    stack.pop()
                attrs = []
            elif t.text == ";":
                attrs = []
            elif t.text == "macro_rules" and i + 2 < n and toks[i + 1].text == "!" and toks[i + 2].ident:
                if any("macro_export" in a for a in attrs):
                    self.crate.exported_macros[toks[i + 2].text] = m
                else:
                    m.defined.add(toks[i + 2].text)
                i += 3
                continue
            elif t.ident and t.text in ITEM_KW and toplevel() and i + 1 < n and toks[i + 1].ident:
                prev = toks[i - 1].text if i else ""
                name = toks[i + 1].text
                if t.text == "static" and name == "mut" and i + 2 < n:
                    name = toks[i + 2].text
                if prev != "*" and name not in ("fn", "_", "unsafe", "async", "extern"):
                    m.defined.add(name)
            elif t.ident and i + 1 < n and toks[i + 1].text == "::":
                i = self.inline_path(toks, i, m)
                continue
            i += 1

    @staticmethod
    def matching(toks, j):
        pairs = {"(": ")", "[": "]", "{": "}"}
        depth = 0
        for k in range(j, len(toks)):
            tt = toks[k].text
            if tt in pairs:
                depth += 1
            elif tt in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    return k
        return len(toks) - 1

    @staticmethod
    def item_end(toks, i):
        """Index of the last token of the item starting at i (ends at `;` or its block)."""
        j = Parser.skip_vis(toks, i)
        semi_only = j < len(toks) and toks[j].text in ("const", "static", "use", "type")
        depth = 0
        for k in range(i, len(toks)):
            tt = toks[k].text
            if tt in ("(", "[", "{"):
                depth += 1
            elif tt in (")", "]", "}"):
                depth -= 1
                if depth < 0:
                    return k - 1
                if depth == 0 and tt == "}" and not semi_only:
                    return k
            elif tt == ";" and depth == 0:
                return k
        return len(toks) - 1

    @staticmethod
    def skip_vis(toks, i):
        if i < len(toks) and toks[i].text == "pub":
            i += 1
            if i < len(toks) and toks[i].text == "(":
                return Parser.matching(toks, i) + 1
        return i

    @staticmethod
    def vis_before(toks, i):
        """The visibility written before the keyword at i: "", "pub", "pub(crate)", ..."""
        j = i - 1
        if j >= 0 and toks[j].text == ")":
            k = j
            while k >= 0 and toks[k].text != "(":
                k -= 1
            if k >= 1 and toks[k - 1].text == "pub":
                return "pub(" + " ".join(t.text for t in toks[k + 1 : j]) + ")"
            return ""
        return "pub" if j >= 0 and toks[j].text == "pub" else ""

    def path_attr(self, attrs):
        for a in attrs:
            m = re.fullmatch(r'\s*path\s*=\s*"([^"]*)"\s*', a)
            if m:
                return m.group(1)
        return None

    def parse_use(self, toks, j, end, prefix, out):
        """Parse one use tree from toks[j:end]; append (segs, alias, glob, line) leaves."""
        segs = list(prefix)
        if j < end and toks[j].text == "::":
            if not prefix:
                segs.append("::")
            j += 1
        while j < end:
            t = toks[j]
            if t.text == "*":
                out.append((segs, None, True, t.line))
                return j + 1
            if t.text == "{":
                j += 1
                while j < end and toks[j].text != "}":
                    nj = self.parse_use(toks, j, end, segs, out)
                    j = nj if nj > j else j + 1
                    if j < end and toks[j].text == ",":
                        j += 1
                return j + 1
            if t.ident or t.text == "$":
                if t.text == "$":
                    j += 1
                    continue
                segs = segs + [t.text]
                j += 1
                if j < end and toks[j].text == "::":
                    j += 1
                    continue
                alias = None
                if j + 1 < end and toks[j].text == "as":
                    alias = toks[j + 1].text
                    j += 2
                if segs[-1] == "self" and len(segs) > 1:
                    segs = segs[:-1]
                out.append((segs, alias, False, t.line))
                return j
            return j
        return j

    def inline_path(self, toks, i, m: Module):
        """A path in code starting at toks[i]; record it if it may point into this crate."""
        t = toks[i]
        prev = toks[i - 1].text if i else ""
        prev2 = toks[i - 2].text if i > 1 else ""
        j = i
        segs = [t.text]
        while j + 2 < len(toks) and toks[j + 1].text == "::" and toks[j + 2].ident:
            segs.append(toks[j + 2].text)
            j += 2
        if prev in ("::", ".") or (prev == "in" and prev2 == "("):
            return j + 1
        if len(segs) > 1:
            # Resolved later: `crate::`, `super::`, `self::`, a child module, or a name that a
            # `use` brought in; anything else (std::, Vec::) resolves to another crate.
            m.paths.append(PathRef(m, segs, t.line))
        return j + 1


# --------------------------------------------------------------------------- resolution


def lookup(cur: Module, name: str, seen: frozenset) -> Res:
    if name in cur.children:
        return Res("module", cur.children[name])
    if name in cur.defined:
        return Res("item", cur, name)
    if cur.parent is None and name in cur.crate.exported_macros:
        return Res("item", cur.crate.exported_macros[name], name)
    b = cur.bindings.get(name)
    if b is not None and id(b) not in seen:
        r = resolve(b.module, b.segs, seen | {id(b)})
        if r.kind in ("module", "item"):
            r.via = [(cur, b)] + r.via
        return r if r.kind != "notfound" else Res(EXTERN)
    for g in cur.globs:
        if id(g) in seen:
            continue
        gr = resolve(g.module, g.segs, seen | {id(g)})
        if gr.kind == "module":
            r = lookup(gr.module, name, seen | {id(g)})
            if r.kind in ("module", "item"):
                r.via = [(cur, g)] + gr.via + r.via
                return r
    return Res("notfound")


def resolve(mod: Module, segs: list[str], seen: frozenset = frozenset()) -> Res:
    first, rest = segs[0], segs[1:]
    via: list = []
    if first == "::":
        return Res(EXTERN)
    if first == "crate":
        cur = mod.crate.root
    elif first == "self":
        cur = mod
    elif first == "super":
        cur = mod.parent
    else:
        r = lookup(mod, first, seen)
        if r.kind in (EXTERN, "notfound"):
            return Res(EXTERN)
        if r.kind == "item":
            return r
        cur, via = r.module, r.via
    for seg in rest:
        if cur is None:
            return Res(EXTERN)
        if seg == "super":
            cur = cur.parent
            continue
        if seg == "self":
            continue
        r = lookup(cur, seg, seen)
        if r.kind == "module":
            cur, via = r.module, via + r.via
            continue
        if r.kind == "notfound":
            return Res("item", cur, seg, via)
        r.via = via + r.via
        return r
    if cur is None:
        return Res(EXTERN)
    return Res("module", cur, None, via)


# --------------------------------------------------------------------------- workspace


@dataclass
class Workspace:
    root: Path
    packages: list[Path]
    crates: list[Crate]
    test_files: set
    real_files: set


def crate_targets(root: Path, pkg: Path) -> list[Crate]:
    manifest = tomllib.loads((pkg / "Cargo.toml").read_text(encoding="utf-8"))
    rel = pkg.relative_to(root).as_posix()
    pkg_name = manifest.get("package", {}).get("name", rel)
    targets: dict[Path, str] = {}
    lib = manifest.get("lib", {}).get("path", "src/lib.rs")
    if (pkg / lib).exists():
        targets[(pkg / lib).resolve()] = "lib"
    for b in manifest.get("bin", []):
        p = pkg / b.get("path", f"src/bin/{b.get('name')}.rs")
        if b.get("name") == pkg_name and "path" not in b and (pkg / "src/main.rs").exists():
            p = pkg / "src/main.rs"
        if p.exists():
            targets.setdefault(p.resolve(), f"bin {b.get('name')}")
    if manifest.get("package", {}).get("autobins", True):
        if (pkg / "src/main.rs").exists():
            targets.setdefault((pkg / "src/main.rs").resolve(), f"bin {pkg_name}")
        bindir = pkg / "src/bin"
        if bindir.is_dir():
            for p in sorted(bindir.glob("*.rs")):
                targets.setdefault(p.resolve(), f"bin {p.stem}")
            for p in sorted(bindir.glob("*/main.rs")):
                targets.setdefault(p.resolve(), f"bin {p.parent.name}")
    return [Crate(rel, kind, path) for path, kind in targets.items()]


def load_workspace(root: Path) -> Workspace:
    root = root.resolve()
    manifest = tomllib.loads((root / "Cargo.toml").read_text(encoding="utf-8"))
    members = manifest.get("workspace", {}).get("members", [])
    packages: list[Path] = []
    for mem in members:
        for p in sorted(root.glob(mem)) if any(ch in mem for ch in "*?[") else [root / mem]:
            if (p / "Cargo.toml").exists():
                packages.append(p.resolve())
    if "package" in manifest and root not in packages:
        packages.insert(0, root)
    crates: list[Crate] = []
    sources: dict = {}
    test_files: set = set()
    real_files: set = set()
    for pkg in packages:
        for crate in crate_targets(root, pkg):
            Parser(root, crate, sources, test_files, real_files).load_root()
            crates.append(crate)
    return Workspace(root, packages, crates, test_files, real_files)


def rel(ws: Workspace, p: Path) -> str:
    try:
        return p.relative_to(ws.root).as_posix()
    except ValueError:
        return p.as_posix()


# --------------------------------------------------------------------------- checks


def inline_test_lines(src: str) -> int:
    toks = tokenize(strip_source(src))
    total = 0
    for i, t in enumerate(toks):
        if t.text == "#" and i + 2 < len(toks) and toks[i + 1].text == "[":
            k = Parser.matching(toks, i + 1)
            if _is_test_attr(src[toks[i + 2].start : toks[k].start]) and k + 1 < len(toks):
                end = Parser.item_end(toks, k + 1)
                total += toks[end].line - t.line + 1
    return total


def check_sizes(ws: Workspace) -> tuple[list[dict], int]:
    found, checked = [], 0
    for pkg in ws.packages:
        src_dir = pkg / "src"
        if not src_dir.is_dir():
            continue
        for p in sorted(src_dir.rglob("*.rs")):
            p = p.resolve()
            if p in ws.test_files and p not in ws.real_files:
                continue
            checked += 1
            text = p.read_text(encoding="utf-8")
            lines = len(text.splitlines())
            if lines > MAX_LINES:
                found.append({"file": rel(ws, p), "lines": lines, "test_lines": inline_test_lines(text)})
    return found, checked


def crate_label(c: Crate) -> str:
    return f"{c.package} ({c.kind})"


def edges_of(crate: Crate):
    """(from_file, to_file) -> list of (line, reference text), from every reference."""
    edges: dict[tuple[Path, Path], list[tuple[int, str]]] = {}

    def add(m: Module, r: Res, line: int, text: str):
        if r.kind == "item" or (r.kind == "module" and text.endswith("::*")):
            if r.module.crate is crate and r.module.file != m.file:
                edges.setdefault((m.file, r.module.file), []).append((line, text))

    for m in crate.modules:
        for u in m.uses:
            if u.toplevel and u.vis.startswith("pub") and (u.glob or u.name not in m.idents):
                # A re-export the module's own code does not use: it publishes the name and
                # is no dependency; whoever imports through it gets the edge to the definer.
                continue
            add(m, resolve(m, u.segs), u.line, "use " + u.text())
        for p in m.paths:
            add(m, resolve(m, p.segs), p.line, p.text())
    return edges


def sccs(nodes, adj):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(adj.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(comp)

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def shortest_cycle(start, comp, adj):
    comp = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        nxt = []
        for v in queue:
            for w in sorted(adj.get(v, ())):
                if w not in comp:
                    continue
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        queue = nxt
    return [start]


def check_cycles(ws: Workspace) -> tuple[list[dict], int]:
    found, seen_comps, nodes_total = [], set(), set()
    for crate in ws.crates:
        edges = edges_of(crate)
        nodes = {m.file for m in crate.modules}
        nodes_total |= nodes
        adj: dict[Path, set[Path]] = {}
        for a, b in edges:
            adj.setdefault(a, set()).add(b)
        src_dir = crate.root_file.parent if crate.kind == "lib" else None
        for comp in sccs(nodes, adj):
            if len(comp) < 2:
                continue
            key = frozenset(comp)
            if key in seen_comps:
                continue
            seen_comps.add(key)
            start = min(comp, key=lambda p: rel(ws, p))
            cyc = shortest_cycle(start, comp, adj)
            base = src_dir or crate.root_file.parent
            while base.name != "src" and base.parent != base:
                base = base.parent

            def short(p):
                try:
                    return p.relative_to(base).as_posix()
                except ValueError:
                    return rel(ws, p)

            steps = []
            for a, b in zip(cyc, cyc[1:]):
                line, text = min(edges[(a, b)])
                steps.append({"from": rel(ws, a), "line": line, "to": rel(ws, b), "via": text})
            inside = sorted(
                (rel(ws, a), min(v)[0], rel(ws, b), min(v)[1])
                for (a, b), v in edges.items()
                if a in key and b in key
            )
            found.append(
                {
                    "crate": crate_label(crate),
                    "modules": sorted(rel(ws, p) for p in comp),
                    "cycle": " → ".join(short(p) for p in cyc),
                    "steps": steps,
                    "edges": [{"from": a, "line": ln, "to": b, "via": t} for a, ln, b, t in inside],
                }
            )
    return found, len(nodes_total)


def reachable(importer: Module, target: Module) -> bool:
    """Whether `importer` may name `target` by its path (every module on the way visible)."""
    for c in target.ancestors():
        if c.parent is None:
            break
        vis = c.vis.replace(" ", "")
        if vis in ("pub", "pub(crate)") or vis.startswith("pub(in"):
            continue
        scope = c.parent if vis in ("", "pub(self)") else (c.parent.parent or c.parent)
        if not importer.is_within(scope):
            return False
    return True


def check_reexports(ws: Workspace) -> tuple[list[dict], list[dict]]:
    found, hidden, seen = [], [], set()
    for crate in ws.crates:
        for m in crate.modules:
            refs = [(u, u.segs, u.line, "use " + u.text()) for u in m.uses]
            refs += [(None, p.segs, p.line, p.text()) for p in m.paths]
            for u, segs, line, text in refs:
                r = resolve(m, segs)
                if r.kind not in ("item", "module") or not r.via:
                    continue
                hops = [(hm, b) for hm, b in r.via if hm.file != m.file]
                if not hops:
                    continue
                own, b0 = r.via[0]
                if own.file == m.file and any(hm.file != m.file for hm, _ in resolve(b0.module, b0.segs).via):
                    continue  # the `use` that brought the name in is reported itself
                through = hops[0][0].file_module()
                if u is not None and u.vis.startswith("pub") and through is not None:
                    fm = m.file_module()
                    if fm.parent is None or any(not c.inline for c in fm.children.values()):
                        continue  # lib.rs or a mod.rs (or x.rs over x/) building its surface
                key = (m.file, line, text)
                if key in seen:
                    continue
                seen.add(key)
                entry = {
                    "file": rel(ws, m.file),
                    "line": line,
                    "import": text,
                    "through": rel(ws, through.file),
                    "defined_in": rel(ws, r.module.file),
                    "name": r.name or r.module.name,
                }
                (found if reachable(m, r.module) else hidden).append(entry)
    found.sort(key=lambda f: (f["file"], f["line"]))
    hidden.sort(key=lambda f: (f["file"], f["line"]))
    return found, hidden


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--only", choices=["sizes", "cycles", "reexports"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    ws = load_workspace(args.root)
    report: dict = {}
    failed = False
    lines: list[str] = []

    if args.only in (None, "sizes"):
        sizes, checked = check_sizes(ws)
        report["sizes"] = sizes
        failed |= bool(sizes)
        lines.append(f"sizes: {len(sizes)} files over {MAX_LINES} lines among {checked} non-test source files")
        for s in sizes:
            note = f" ({s['test_lines']} of them in inline #[cfg(test)] items)" if s["test_lines"] else ""
            lines.append(f"  {s['file']}: {s['lines']} lines{note}")

    if args.only in (None, "cycles"):
        cycles, nmods = check_cycles(ws)
        report["cycles"] = cycles
        failed |= bool(cycles)
        lines.append(f"cycles: {len(cycles)} circles among {nmods} modules in {len(ws.crates)} crates")
        for c in cycles:
            lines.append(f"  {c['crate']}, {len(c['modules'])} modules: {c['cycle']}")
            for s in c["steps"]:
                lines.append(f"    {s['from']}:{s['line']} → {s['to']}  ({s['via']})")
            extra = [e for e in c["edges"] if not any(e["from"] == s["from"] and e["to"] == s["to"] for s in c["steps"])]
            if extra:
                lines.append("    other edges inside this circle:")
                for e in extra:
                    lines.append(f"      {e['from']}:{e['line']} → {e['to']}  ({e['via']})")

    if args.only in (None, "reexports"):
        reexports, hidden = check_reexports(ws)
        report["reexports"] = reexports
        report["reexports_allowed_facade"] = hidden
        failed |= bool(reexports)
        note = f" ({len(hidden)} more go through a facade over a private module, allowed)" if hidden else ""
        lines.append(f"reexports: {len(reexports)} imports through a re-export{note}")
        for f in reexports:
            lines.append(
                f"  {f['file']}:{f['line']}: {f['import']} goes through {f['through']}; "
                f"defined in {f['defined_in']}"
            )

    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
