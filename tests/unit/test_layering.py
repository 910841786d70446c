"""The core stays framework-free: ``src/mjcore`` imports only the stdlib and attrs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import mjcore

ALLOWED = set(sys.stdlib_module_names) | {"attr", "attrs", "mjcore"}
CORE = Path(mjcore.__file__).parent


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_only_stdlib_and_attrs() -> None:
    offenders = {
        str(path.relative_to(CORE)): sorted(imported_roots(path.read_text()) - ALLOWED)
        for path in sorted(CORE.rglob("*.py"))
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}
    assert len(offenders) > 10  # the walk really saw the core


def test_the_check_catches_a_framework_import() -> None:
    source = "import os\nfrom starlette.requests import Request\nfrom . import ledger\n"
    assert imported_roots(source) - ALLOWED == {"starlette"}


def test_every_exported_name_exists() -> None:
    missing = [name for name in mjcore.__all__ if not hasattr(mjcore, name)]
    assert missing == []
    assert len(set(mjcore.__all__)) == len(mjcore.__all__)


BALANCE_MOVES = (
    "ledger.append(",
    "accounts.change_total(",
    "accounts.change_use(",
    "accounts.debit(",
)


def test_every_balance_change_goes_through_credits() -> None:
    """credits.py promises that counters and entries move together: nothing else moves them."""
    offenders = {
        str(path.relative_to(CORE)): [move for move in BALANCE_MOVES if move in path.read_text()]
        for path in sorted(CORE.rglob("*.py"))
        if path.name != "credits.py"
    }
    assert {name: moves for name, moves in offenders.items() if moves} == {}
    assert all(move in (CORE / "services" / "credits.py").read_text() for move in BALANCE_MOVES)
