#!/usr/bin/env python3
"""Self-test for ci/structure.py: small fixture workspaces it must flag, and ones it must not.

Run: python3 -m unittest ci/test_structure.py   (or: python3 ci/test_structure.py)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep ci/ free of __pycache__
sys.path.insert(0, str(HERE))

import structure  # noqa: E402


def write_workspace(root: Path, crates: dict[str, dict[str, str]]) -> Path:
    """crates: member dir -> {path inside the member: source}."""
    members = ", ".join(f'"{name}"' for name in crates)
    (root / "Cargo.toml").write_text(f'[workspace]\nresolver = "3"\nmembers = [{members}]\n')
    for name, files in crates.items():
        pkg = root / name
        pkg.mkdir(parents=True)
        (pkg / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2024"\n')
        for path, src in files.items():
            p = pkg / path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(src).lstrip("\n"))
    return root


class Fixture(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)

    def tearDown(self):
        self._tmp.cleanup()

    def load(self, crates):
        write_workspace(self.root, crates)
        return structure.load_workspace(self.root)

    def cycles(self, crates):
        ws = self.load(crates)
        found, _ = structure.check_cycles(ws)
        return found

    def reexports(self, crates):
        found, _ = structure.check_reexports(self.load(crates))
        return found

    def sizes(self, crates):
        found, _ = structure.check_sizes(self.load(crates))
        return found


class Finds(Fixture):
    def test_two_cycle_via_use(self):
        found = self.cycles(
            {
                "one": {
                    "src/lib.rs": "mod a;\nmod b;\n",
                    "src/a.rs": "use crate::b::B;\npub struct A(B);\n",
                    "src/b.rs": "use crate::a::A;\npub struct B(Box<A>);\n",
                }
            }
        )
        self.assertEqual(len(found), 1)
        self.assertEqual(found[0]["modules"], ["one/src/a.rs", "one/src/b.rs"])
        self.assertEqual(found[0]["cycle"], "a.rs → b.rs → a.rs")
        self.assertEqual(
            [(s["from"], s["line"], s["to"]) for s in found[0]["steps"]],
            [("one/src/a.rs", 1, "one/src/b.rs"), ("one/src/b.rs", 1, "one/src/a.rs")],
        )

    def test_three_cycle_via_inline_crate_paths(self):
        found = self.cycles(
            {
                "one": {
                    "src/lib.rs": "mod a;\nmod b;\nmod c;\n",
                    "src/a.rs": "pub fn fa() {\n    crate::b::fb();\n}\n",
                    "src/b.rs": "pub fn fb() {\n    crate::c::fc();\n}\n",
                    "src/c.rs": "pub fn fc() {\n    if false { crate::a::fa() }\n}\n",
                }
            }
        )
        self.assertEqual(len(found), 1)
        self.assertEqual(found[0]["cycle"], "a.rs → b.rs → c.rs → a.rs")
        self.assertEqual([s["line"] for s in found[0]["steps"]], [2, 2, 2])

    def test_cycle_hidden_behind_mod_rs_reexport(self):
        crates = {
            "one": {
                "src/lib.rs": "mod p;\n",
                "src/p/mod.rs": "mod a;\nmod b;\npub use b::X;\n",
                "src/p/a.rs": "use super::X;\npub struct A(X);\n",
                "src/p/b.rs": "use super::a::A;\npub struct X;\nfn f(_: A) {}\n",
            }
        }
        found = self.cycles(crates)
        self.assertEqual(len(found), 1)
        # The edge goes to the defining module b.rs, not to the re-exporting mod.rs.
        self.assertEqual(found[0]["modules"], ["one/src/p/a.rs", "one/src/p/b.rs"])
        self.assertEqual(found[0]["cycle"], "p/a.rs → p/b.rs → p/a.rs")
        # And importing X through mod.rs is itself reported: b.rs is reachable from a.rs.
        self._tmp.cleanup()
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        through = self.reexports(crates)
        self.assertEqual(
            [(f["file"], f["line"], f["through"], f["defined_in"]) for f in through],
            [("one/src/p/a.rs", 1, "one/src/p/mod.rs", "one/src/p/b.rs")],
        )

    def test_cycle_through_lib_rs_reexports(self):
        found = self.cycles(
            {
                "one": {
                    "src/lib.rs": "mod config;\nmod limits;\npub use config::Config;\npub use limits::Limits;\n",
                    "src/config.rs": "use crate::Limits;\npub struct Config(Limits);\n",
                    "src/limits.rs": "pub struct Limits;\nimpl Limits { fn f(_: crate::Config) {} }\n",
                }
            }
        )
        self.assertEqual([f["modules"] for f in found], [["one/src/config.rs", "one/src/limits.rs"]])

    def test_over_long_file(self):
        found = self.sizes(
            {
                "one": {
                    "src/lib.rs": "mod long;\nmod exact;\n",
                    "src/long.rs": "// line\n" * 601,
                    "src/exact.rs": "// line\n" * 600,
                    "src/bin/tool.rs": "fn main() {}\n" + "// line\n" * 700,
                }
            }
        )
        self.assertEqual(
            [(f["file"], f["lines"]) for f in found],
            [("one/src/bin/tool.rs", 701), ("one/src/long.rs", 601)],
        )

    def test_import_through_lib_rs(self):
        found = self.reexports(
            {
                "one": {
                    "src/lib.rs": "mod config;\nmod limits;\npub use limits::Limits;\n",
                    "src/config.rs": "use std::fmt;\n\nuse crate::Limits;\npub struct Config(Limits);\n",
                    "src/limits.rs": "pub struct Limits;\n",
                }
            }
        )
        # lib.rs's own `pub use` is the public surface and is not reported.
        self.assertEqual(
            [(f["file"], f["line"], f["through"], f["defined_in"]) for f in found],
            [("one/src/config.rs", 3, "one/src/lib.rs", "one/src/limits.rs")],
        )

    def test_script_exits_non_zero_and_prints_each_finding(self):
        write_workspace(
            self.root,
            {
                "one": {
                    "src/lib.rs": "mod a;\nmod b;\n",
                    "src/a.rs": "use crate::b::B;\npub struct A;\n",
                    "src/b.rs": "use crate::a::A;\npub struct B;\n",
                }
            },
        )
        run = subprocess.run(
            [sys.executable, str(HERE / "structure.py"), "--root", str(self.root)],
            capture_output=True,
            text=True,
        )
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("cycles: 1 circles among 3 modules in 1 crates", run.stdout)
        self.assertIn("one/src/a.rs:1 → one/src/b.rs", run.stdout)
        run = subprocess.run(
            [sys.executable, str(HERE / "structure.py"), "--root", str(self.root), "--only", "sizes", "--json"],
            capture_output=True,
            text=True,
        )
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertEqual(json.loads(run.stdout), {"sizes": []})


class DoesNotFlag(Fixture):
    def test_parent_declaring_child_is_not_an_import(self):
        crates = {
            "one": {
                "src/lib.rs": "pub mod child;\npub struct Root;\n",
                "src/child.rs": "use crate::Root;\npub fn f(_: Root) {}\n",
            }
        }
        self.assertEqual(self.cycles(crates), [])

    def test_parent_using_child_is_an_import(self):
        # The counterpart of the test above, so that it cannot pass by ignoring lib.rs.
        crates = {
            "one": {
                "src/lib.rs": "pub mod child;\npub struct Root;\nfn g() { child::f(Root) }\n",
                "src/child.rs": "use crate::Root;\npub fn f(_: Root) {}\n",
            }
        }
        self.assertEqual(len(self.cycles(crates)), 1)

    def test_unused_reexport_is_not_an_import(self):
        # link/mod.rs in the mesh: it re-exports its children and defines what they use.
        crates = {
            "one": {
                "src/lib.rs": "mod link;\n",
                "src/link/mod.rs": "mod tcp;\npub use tcp::TcpLink;\npub struct EventSink;\n",
                "src/link/tcp.rs": "use super::EventSink;\npub struct TcpLink(EventSink);\n",
            }
        }
        self.assertEqual(self.cycles(crates), [])

    def test_reexport_its_own_code_uses_is_an_import(self):
        crates = {
            "one": {
                "src/lib.rs": "mod link;\n",
                "src/link/mod.rs": "mod tcp;\npub use tcp::TcpLink;\npub struct EventSink(Vec<TcpLink>);\n",
                "src/link/tcp.rs": "use super::EventSink;\npub struct TcpLink(Box<EventSink>);\n",
            }
        }
        self.assertEqual([f["cycle"] for f in self.cycles(crates)], ["link/mod.rs → link/tcp.rs → link/mod.rs"])

    def test_cfg_test_modules_are_left_out(self):
        crates = {
            "one": {
                "src/lib.rs": "mod a;\nmod b;\n",
                "src/a.rs": """
                    pub struct A;
                    #[cfg(test)]
                    mod tests {
                        use crate::b::B;
                    }
                    #[cfg(test)]
                    mod file_tests;
                """,
                "src/a/file_tests.rs": "use crate::b::B;\n" + "// line\n" * 700,
                "src/b.rs": "use crate::a::A;\npub struct B(A);\n",
            }
        }
        ws = self.load(crates)
        self.assertEqual(structure.check_cycles(ws)[0], [])
        self.assertEqual(structure.check_sizes(ws)[0], [])

    def test_lifetimes_strings_comments_are_not_code(self):
        crates = {
            "one": {
                "src/lib.rs": "mod a;\nmod b;\nmod c;\n",
                "src/a.rs": r'''
                    //! crate::b::B in a doc comment
                    pub fn f<'a>(x: &'a str, c: char) -> &'a str {
                        let _ = (c == '"', '\'', "crate::b::B \" crate::b::B", b'x');
                        let _ = r#"crate::b::B "# ;
                        /* crate::b::B /* nested */ crate::b::B */
                        'outer: loop { break 'outer; } // crate::b::B
                        crate::c::g();
                        x
                    }
                ''',
                "src/b.rs": "use crate::a::f;\npub struct B;\n",
                "src/c.rs": "pub fn g() {}\n",
            }
        }
        ws = self.load(crates)
        self.assertEqual(structure.check_cycles(ws)[0], [])
        crate = ws.crates[0]
        edges = {(a.name, b.name) for a, b in structure.edges_of(crate)}
        # The real path after the lifetimes and literals is still seen.
        self.assertEqual(edges, {("a.rs", "c.rs"), ("b.rs", "a.rs")})

    def test_strip_source_keeps_lifetimes_and_blanks_literals(self):
        src = "fn f<'a>(x: &'a str) { let c = 'x'; let s = \"crate::b\"; }\n// crate::c\n"
        out = structure.strip_source(src)
        self.assertEqual(len(out), len(src))
        self.assertEqual(out.count("'a"), 2)
        self.assertNotIn("crate::", out)
        self.assertNotIn("x'", out)
        self.assertIn("let s", out)

    def test_paths_into_other_crates(self):
        crates = {
            "alpha": {
                "src/lib.rs": "mod inner;\npub use inner::Thing;\n",
                "src/inner.rs": "pub struct Thing;\n",
            },
            "beta": {
                # Beta has its own `Thing` at its root too: `alpha::Thing` must not land on it.
                "src/lib.rs": "mod user;\nmod inner;\npub use inner::Thing;\n",
                "src/inner.rs": "pub struct Thing;\nfn f() { crate::user::g() }\n",
                "src/user.rs": "use alpha::Thing;\nuse ::alpha::inner;\npub fn g() { let _ = alpha::Thing; }\n",
            },
        }
        ws = self.load(crates)
        self.assertEqual(structure.check_reexports(ws)[0], [])
        self.assertEqual(structure.check_cycles(ws)[0], [])

    def test_clean_workspace_passes(self):
        write_workspace(
            self.root,
            {
                "one": {
                    "src/lib.rs": "mod a;\nmod b;\npub use a::A;\n",
                    "src/a.rs": "use crate::b::B;\npub struct A(B);\n",
                    "src/b.rs": "pub struct B;\n",
                    "tests/long.rs": "// line\n" * 900,
                }
            },
        )
        run = subprocess.run(
            [sys.executable, str(HERE / "structure.py"), "--root", str(self.root)],
            capture_output=True,
            text=True,
        )
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("cycles: 0 circles among 3 modules in 1 crates", run.stdout)
        self.assertIn("sizes: 0 files over 600 lines", run.stdout)
        self.assertIn("reexports: 0 imports through a re-export", run.stdout)


if __name__ == "__main__":
    unittest.main()
