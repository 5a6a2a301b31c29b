"""The layering check finds what it must: a cycle between sibling modules (also through
`super::` and nested paths), none where code only points one way or only tests point back, and a
file over budget; the baseline admits exactly what it lists."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import layering  # noqa: E402

TOOL = Path(__file__).parent / "layering.py"


def crate(tmp_path, files):
    root = tmp_path / "c"
    for name, text in files.items():
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


def messages(crate_dir):
    return [m for _, m in layering.check([crate_dir])]


def test_a_cycle_between_siblings_is_found(tmp_path):
    c = crate(tmp_path, {
        "lib.rs": "mod a;\nmod b;\n",
        "a.rs": "use crate::b::B;\npub(crate) struct A;\n",
        "b.rs": "pub(crate) struct B;\nfn f() -> crate::a::A { crate::a::A }\n",
    })
    assert messages(c) == [f"{c}: module cycle under crate root: a, b"]


def test_a_cycle_through_super_inside_a_folder_is_found(tmp_path):
    c = crate(tmp_path, {
        "lib.rs": "mod m;\n",
        "m/mod.rs": "mod x;\nmod y;\n",
        "m/x.rs": "use super::y::Y;\npub(crate) struct X;\n",
        "m/y.rs": "use super::x::X;\npub(crate) struct Y;\n",
    })
    assert messages(c) == [f"{c}: module cycle under m: m::x, m::y"]


def test_one_way_and_test_only_references_are_no_cycle(tmp_path):
    c = crate(tmp_path, {
        "lib.rs": "mod a;\nmod b;\n",
        "a.rs": "use crate::b::B;\n// crate::b is fine; \"crate::b\" in a string too\n",
        "b.rs": "pub(crate) struct B;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n",
    })
    assert messages(c) == []


def test_a_file_over_budget_is_found_and_tests_do_not_count(tmp_path):
    body = "fn f() {}\n" * (layering.MAX_LINES + 1)
    tests = "#[cfg(test)]\nmod tests {\n" + "    fn t() {}\n" * 900 + "}\n"
    c = crate(tmp_path, {"lib.rs": "mod big;\nmod ok;\n", "big.rs": body, "ok.rs": "fn g() {}\n" + tests})
    assert [m.split(" has ")[1] for m in messages(c)] == [f"{layering.MAX_LINES + 1} lines of code outside tests (budget {layering.MAX_LINES})"]


@pytest.mark.parametrize("baseline, code", [
    ("cycle {c} crate root: a, b\n", 0),
    ("", 1),
    ("cycle {c} crate root: a, b\ncycle {c} crate root: x, y\n", 1),
])
def test_the_baseline_admits_exactly_what_it_lists(tmp_path, baseline, code):
    c = crate(tmp_path, {"lib.rs": "mod a;\nmod b;\n", "a.rs": "use crate::b::B;\n", "b.rs": "use crate::a::A;\n"})
    path = tmp_path / "baseline.txt"
    path.write_text(baseline.format(c=c))
    proc = subprocess.run([sys.executable, str(TOOL), "--baseline", str(path), c], capture_output=True, text=True)
    assert proc.returncode == code, proc.stdout


def issuer_crate(tmp_path, oauth_file):
    """A crate named like the issuer, whose `oauth` module holds `oauth_file`."""
    root = tmp_path / "issuer"
    files = {
        "lib.rs": "mod http;\nmod oauth;\nmod directory;\nmod state;\n",
        "http.rs": "pub(crate) struct Page;\n",
        "directory.rs": "pub(crate) struct Client;\nfn f(_: crate::state::Issuer) {}\n",
        "state.rs": "pub(crate) struct Issuer;\n",
        "oauth/mod.rs": "mod grant;\n",
        "oauth/grant.rs": oauth_file,
    }
    for name, text in files.items():
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


@pytest.mark.parametrize("code, names", [
    ("use crate::directory::Client;\n// axum::Router in a comment\nconst S: &str = \"http::StatusCode\";\n", None),
    ("use axum::response::Response;\n", "axum"),
    ("fn f() -> ::http::StatusCode { todo!() }\n", "http"),
    ("use http::{HeaderMap, StatusCode};\n", "http"),
    ("use crate::http::Page;\n", "crate::http"),
    ("use super::super::http::Page;\n", "crate::http"),
    ("#[cfg(test)]\nmod tests {\n    use http::StatusCode;\n}\n", "http"),
])
def test_the_issuers_oauth_module_never_names_http(tmp_path, code, names):
    c = issuer_crate(tmp_path, code)
    # The directory names the state in every case: it may not either.
    expected = [f"{c}: directory names crate::state, but directory never sees HTTP"]
    if names is not None:
        expected.append(f"{c}: oauth::grant names {names}, but oauth never sees HTTP")
    assert messages(c) == expected


def test_the_http_rule_is_not_admitted_by_the_baseline(tmp_path):
    c = issuer_crate(tmp_path, "use axum::Router;\n")
    path = tmp_path / "baseline.txt"
    path.write_text("")
    proc = subprocess.run([sys.executable, str(TOOL), "--baseline", str(path), c], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "oauth never sees HTTP" in proc.stdout
