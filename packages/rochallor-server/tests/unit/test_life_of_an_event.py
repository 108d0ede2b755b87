"""The "life of an event" page names only files and code that exist.

The page (``docs/server.md``, read first by new contributors) follows one job completion through
the layers by file and by name. Every backticked file path must be a file of the server, every
``Class.member`` a member defined in that class, every ``module.function`` (``core``,
``routes``, ``limits`` …: the aliases the code uses) a function of that module, and every other
backticked code name something the server defines.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "rochallor_server"
DOCS = ROOT.parents[1] / "docs"
PAGE = DOCS / "server.md"
SECTION = "## The life of an event"

# How the code refers to its modules (``from … import instance as core``).
ALIASES = {
    "core": "engine/instance.py",
    "routes": "api/rest/routes.py",
    "limits": "engine/limits.py",
    "serde": "api/rest/serde.py",
}
# Backticked things that are not code names of the server: wire fields, SQL, HTTP.
_CODE = re.compile(r"`([^`\s]+)`")
_PATH = re.compile(r"^[\w/]+\.(py|sql)$")
_DOTTED = re.compile(r"^([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:\(.*)?$")
_NAME = re.compile(r"^_?[A-Za-z]\w*$")


def _section() -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : None if end < 0 else end]


@functools.cache
def _trees() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(encoding="utf-8")) for p in PACKAGE.rglob("*.py")}


def _defined(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _members(class_name: str) -> set[str] | None:
    for tree in _trees().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == class_name:
                return _defined(node)
    return None


def _files() -> set[str]:
    """Paths in the package, by name alone too, and the server's tests."""
    files = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*") if p.is_file()}
    tests = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*.py")}
    return files | {f.rsplit("/", 1)[-1] for f in files} | tests


def test_the_page_has_the_section() -> None:
    assert len(_section().splitlines()) > 20


def test_every_file_it_names_exists() -> None:
    named = {c for c in _CODE.findall(_section()) if _PATH.match(c)}
    assert named, "the page names no file"
    missing = sorted(named - _files())
    assert not missing


def test_every_code_name_it_uses_is_defined() -> None:
    everything = set().union(*(_defined(t) for t in _trees().values()))
    missing: list[str] = []
    for code in set(_CODE.findall(_section())):
        if _PATH.match(code):
            continue
        dotted = _DOTTED.match(code)
        if dotted:
            owner, member = dotted.groups()
            if owner in ALIASES:
                if member not in _defined(_trees()[PACKAGE / ALIASES[owner]]):
                    missing.append(code)
            elif owner[0].isupper():
                members = _members(owner)
                if members is None or member not in members:
                    missing.append(code)
            elif owner == "tx" and member not in (_members("Session") or set()):
                missing.append(code)
        elif code.isupper() and not code.startswith("_"):
            continue  # SQL and wire words: NOTIFY, SERVICE_TASK, FAILED …
        elif (
            _NAME.match(code)
            and (code[0].isupper() or code.startswith("_"))
            and code not in everything
        ):
            missing.append(code)
    assert not sorted(missing)
