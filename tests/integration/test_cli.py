"""The real command line, run as a user would: the seed's manage_users verbs and the rest."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ..support import open_test_store, store_params, url_for

ROOT = Path(__file__).resolve().parents[2]
MJCORE = str(Path(sys.executable).parent / "mjcore")

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.fixture
def run(db_path: Path, tmp_path: Path) -> Run:
    """Run a command with the SQLite database of this test; returns the finished process."""

    def runner(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
        base["MJCORE_DATABASE_URL"] = f"sqlite:///{db_path}"
        return subprocess.run(
            argv, env=base | (env or {}), cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    return runner


def manage(run: Run, *args: str) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, str(ROOT / "manage_users.py"), *args)


def created_key(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("app_key: ")]
    return line.removeprefix("app_key: ")


def test_the_seed_commands_work_on_sqlite(run: Run, db_path: Path) -> None:
    key = created_key(manage(run, "create", "testuser", "500"))

    info = manage(run, "info", "testuser")
    by_key = manage(run, "info-key", key)
    updated = manage(run, "update-tokens", key, "800")
    reset = manage(run, "reset-usage", key)

    assert info.returncode == by_key.returncode == updated.returncode == reset.returncode == 0
    assert "token_total: 500" in info.stdout and "user_name: testuser" in by_key.stdout
    assert "token_total: 800" in updated.stdout
    assert "token_use: 0" in reset.stdout
    with sqlite3.connect(db_path) as db:
        kinds = [row[0] for row in db.execute("SELECT kind FROM ledger_entry ORDER BY id")]
    assert kinds == ["grant", "adjust"]  # nothing was used, so the reset wrote nothing
    assert run(MJCORE, "ledger", "verify").returncode == 0


def test_create_defaults_to_100_tokens(run: Run) -> None:
    created_key(manage(run, "create", "testuser"))
    assert "token_total: 100" in manage(run, "info", "testuser").stdout


def test_the_app_key_is_shown_once_and_only_its_digest_is_stored(run: Run, db_path: Path) -> None:
    key = created_key(manage(run, "create", "testuser", "500"))

    later = [manage(run, "info", "testuser"), manage(run, "info-key", key), manage(run, "list")]
    later.append(run(MJCORE, "users", "list", "--json"))
    assert all(key not in r.stdout + r.stderr for r in later)
    with sqlite3.connect(db_path) as db:
        [(stored,)] = list(db.execute("SELECT app_key FROM user_info"))
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    assert key.encode() not in db_path.read_bytes()


def test_every_command_speaks_json(run: Run) -> None:
    created = json.loads(run(MJCORE, "users", "create", "alice", "7", "--json").stdout)
    key = created["app_key"]
    outputs = {
        "info": run(MJCORE, "users", "info", "alice", "--json"),
        "info-key": run(MJCORE, "users", "info-key", key, "--json"),
        "update": run(MJCORE, "users", "update-tokens", key, "9", "--json"),
        "reset": run(MJCORE, "users", "reset-usage", key, "--json"),
        "list": run(MJCORE, "--json", "users", "list"),
        "codes": run(MJCORE, "codes", "create", "--credits", "5", "--count", "3", "--json"),
        "stats": run(MJCORE, "stats", "--json"),
        "migrate": run(MJCORE, "migrate", "--json"),
        "verify": run(MJCORE, "ledger", "verify", "--json"),
    }
    data = {name: json.loads(result.stdout) for name, result in outputs.items()}

    assert created["token_total"] == 7 and created["credits"] == 7
    assert data["info"]["user_name"] == data["info-key"]["user_name"] == "alice"
    assert data["update"]["token_total"] == 9
    assert [a["user_name"] for a in data["list"]] == ["alice"]
    assert len(data["codes"]["codes"]) == 3 and data["codes"]["credits"] == 5
    assert data["stats"] == {
        "totalUsers": 1,
        "totalTasks": 0,
        "totalRecords": 0,
        "totalCodes": 3,
        "usedCodes": 0,
        "totalCredits": 9,
    }
    assert data["migrate"] == {"applied": []}
    assert data["verify"]["ok"] is True and data["verify"]["accounts_checked"] == 1


def test_exit_status_is_0_ok_1_not_found_or_invalid_2_usage(run: Run) -> None:
    key = created_key(manage(run, "create", "alice", "5"))

    assert manage(run, "info", "nobody").returncode == 1
    assert manage(run, "info-key", "not-a-key").returncode == 1
    assert manage(run, "create", "alice").returncode == 1  # name taken
    assert manage(run, "create", "bad name!").returncode == 1
    assert manage(run, "update-tokens", key, "99999999999").returncode == 1
    assert manage(run, "update-tokens", key, "minus").returncode == 2
    assert manage(run, "frobnicate").returncode == 2
    assert run(MJCORE).returncode == 2
    assert run(MJCORE, "codes", "create", "--credits", "5", "--count", "1001").returncode == 1
    failed = run(MJCORE, "users", "info", "nobody", "--json")
    assert failed.returncode == 1 and json.loads(failed.stdout) == {
        "error": "no account named 'nobody'"
    }


def test_ledger_verify_fails_when_a_counter_is_changed_behind_its_back(
    run: Run, db_path: Path
) -> None:
    created_key(manage(run, "create", "alice", "5"))
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE user_info SET token_use = token_use + 2")

    result = run(MJCORE, "ledger", "verify")

    assert result.returncode == 1
    assert "MISMATCH alice" in result.stderr and "token_use 2 vs entries 0" in result.stderr


def test_migrate_reports_what_it_applied(run: Run, db_path: Path) -> None:
    first = run(MJCORE, "migrate")
    second = run(MJCORE, "migrate")

    assert first.stdout.startswith("applied migrations [1")
    assert second.stdout.strip() == "schema is up to date"


def test_a_bad_setting_stops_with_one_line_naming_it(run: Run) -> None:
    result = run(MJCORE, "stats", env={"MJCORE_MJ_CONCURRENCY": "lots"})

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: MJCORE_MJ_CONCURRENCY: must be a whole number from 1 to 1000 (got 'lots')"
    ]


def test_an_unreachable_database_is_one_clear_error(run: Run) -> None:
    result = run(
        MJCORE, "stats", env={"MJCORE_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/nope"}
    )

    assert result.returncode == 1
    assert "cannot open the database postgresql://u:***@127.0.0.1:1/nope" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(params=[p for p in store_params() if p.id in ("mysql", "postgres")])  # type: ignore[attr-defined]
async def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A MySQL or PostgreSQL URL whose tables were just emptied."""
    async with open_test_store(request.param, tmp_path):
        pass
    yield url_for(request.param, tmp_path)


def test_the_seed_commands_work_on_the_server_databases(run: Run, server_url: str) -> None:
    env = {"MJCORE_DATABASE_URL": server_url}
    key = created_key(
        run(sys.executable, str(ROOT / "manage_users.py"), "create", "t", "500", env=env)
    )

    updated = run(MJCORE, "users", "update-tokens", key, "800", "--json", env=env)
    info = run(MJCORE, "users", "info", "t", "--json", env=env)
    verify = run(MJCORE, "ledger", "verify", env=env)

    assert json.loads(updated.stdout)["token_total"] == 800
    assert json.loads(info.stdout)["credits"] == 800
    assert verify.returncode == 0, verify.stderr
