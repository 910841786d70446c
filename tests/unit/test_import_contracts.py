"""The layers are kept by import-linter (CI runs ``lint-imports``); these tests show the
tool really refuses a wrong import, and that its list of entrypoint modules is complete."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import entrypoints

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(src)}
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=src.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    return src


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_core_importing_an_adapter_is_refused(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    _append(src / "mjcore" / "tasks.py", "import adapters.memory  # noqa")
    result = _lint(src)
    assert result.returncode != 0
    assert "Layers: entrypoints over adapters over the core BROKEN" in result.stdout


def test_a_route_module_importing_a_concrete_adapter_is_refused(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    _append(src / "entrypoints" / "trigger_api.py", "import adapters.discord  # noqa")
    result = _lint(src)
    assert result.returncode != 0
    assert "picks concrete adapters BROKEN" in result.stdout


def test_the_contract_names_every_entrypoint_module_but_the_composition_root() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [
        c for c in config["tool"]["importlinter"]["contracts"] if "composition root" in c["name"]
    ]
    package = Path(entrypoints.__file__).parent
    modules = {f"entrypoints.{p.stem}" for p in package.glob("*.py") if p.stem not in ("__init__",)}
    assert set(contract["source_modules"]) == modules - {"entrypoints.bootstrap"}
