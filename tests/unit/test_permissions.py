"""Files that hold secrets or customers' images are the owner's alone."""

from __future__ import annotations

import stat
from pathlib import Path

from adapters.images import LocalImageStore
from entrypoints.bootstrap import open_store
from mjcore.clock import system_clock
from mjcore.services import accounts

from ..fakes.images import png


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _journal(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith("private.db-")]


async def test_finding_17_a_new_sqlite_database_and_its_journal_are_private(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.migrate()
        await accounts.kept_secret(store, "jwt_secret", "x" * 48)
        await accounts.create_account(store, system_clock, "alice", 5)
        journal = _journal(tmp_path)
        assert _mode(path) == 0o600
        assert journal and all(_mode(p) == 0o600 for p in journal)
    finally:
        await store.close()


async def test_finding_17_images_are_kept_in_a_private_directory(tmp_path: Path) -> None:
    directory = tmp_path / "images"
    url = await LocalImageStore(directory, "http://x").save(png(), "image/png")
    [saved] = list(directory.glob("*.png"))
    assert url.endswith(saved.name)
    assert (_mode(directory), _mode(saved)) == (0o700, 0o600)
