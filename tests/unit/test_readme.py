"""The README stays true: its embedding example runs, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
