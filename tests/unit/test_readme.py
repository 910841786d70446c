"""The README stays true: its embedding example runs, and CI runs its test command."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _block_after(heading: str, language: str) -> str:
    section = README.split(heading, 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match, f"no {language} block after {heading}"
    return match.group(1)


def test_the_embedding_example_runs_and_prints_what_it_promises() -> None:
    code = _block_after("## Embedding the core", "python")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "15"


def test_ci_runs_the_test_command_of_the_first_screen() -> None:
    first_screen = _block_after("# mjcore", "sh")
    ci = (ROOT / ".ci" / "run").read_text()
    command = ci.split("# the test command from the README\n", 1)[1].strip()
    assert first_screen.rstrip().endswith(command)


def test_the_first_screens_serve_command_installs_every_library_serving_imports() -> None:
    """``pip install -e '.[server]' && mjcore serve`` (on SQLite): every third-party module
    the entrypoints and adapters import comes with ``[server]`` (or the core), directly or
    as a dependency of one, but the MySQL and PostgreSQL drivers, imported only for their
    URLs."""
    first_screen = _block_after("# mjcore", "sh")
    assert "pip install -e '.[server]' && mjcore serve" in first_screen
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = _closure(project["dependencies"] + project["optional-dependencies"]["server"])
    imported = set()
    for package in ("entrypoints", "adapters"):
        for path in (ROOT / "src" / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module.split(".")[0])
    providers = packages_distributions()
    ours = {"mjcore", "adapters", "entrypoints"}
    third_party = {m for m in imported if m in providers and m not in ours}
    missing = {
        m
        for m in third_party - {"aiomysql", "pymysql", "asyncpg"}  # the drivers
        if not {canonicalize_name(d) for d in providers[m]} & installed
    }
    assert {"cryptography", "jinja2", "starlette"} <= third_party
    assert missing == set()


def _closure(specs: list[str]) -> set[str]:
    """The distributions these requirements install (as installed here), extras included."""
    found: set[str] = set()
    todo = [Requirement(spec) for spec in specs]
    while todo:
        wanted = todo.pop()
        name = canonicalize_name(wanted.name)
        if name in found:
            continue
        found.add(name)
        for line in requires(wanted.name) or []:
            needed = Requirement(line)
            extras = wanted.extras or {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                todo.append(needed)
    return found
