"""The real command line, run as a user would: the seed's manage_users verbs and the rest."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pytest

from entrypoints.bootstrap import open_store
from entrypoints.cli import build_parser, main
from mjcore.clock import system_clock
from mjcore.pricing import Prices
from mjcore.services import accounts, tasks
from mjcore.services.midjourney import MidjourneyService, QueueLimits
from mjcore.tasks import Provider
from mjcore.webhooks import DeliveryStatus, Hook, Outcome, with_hooks

from ..support import open_test_store, store_params, url_for
from .test_contract_queue import FakeMirror, FakeProvider, pool_account

ROOT = Path(__file__).resolve().parents[2]
MJCORE = str(Path(sys.executable).parent / "mjcore")

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


@pytest.fixture
def run(db_path: Path, tmp_path: Path) -> Run:
    """Run a command with the SQLite database of this test; returns the finished process."""

    def runner(
        *argv: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
        base["MJCORE_DATABASE_URL"] = f"sqlite:///{db_path}"
        return subprocess.run(
            argv,
            env=base | (env or {}),
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
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
async def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A MySQL or PostgreSQL URL whose tables were just emptied."""
    async with open_test_store(request.param, tmp_path):
        pass
    return url_for(request.param, tmp_path)


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


# -- operators act by name ----------------------------------------------------------------


def test_version_prints_the_installed_version(run: Run) -> None:
    result = run(MJCORE, "--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"mjcore {metadata.version('mjcore')}"


def _leaves(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for child in action.choices.values():
            yield from _leaves(child)


def test_every_option_has_help_and_shows_its_default() -> None:
    checked = 0
    for leaf in _leaves(build_parser()):
        text = " ".join(leaf.format_help().split())
        for action in leaf._actions:
            assert action.help, (leaf.prog, action.dest)
            shown = action.default not in (None, argparse.SUPPRESS) and action.default is not False
            if action.option_strings and shown:
                assert f"(default: {action.default})" in text, (leaf.prog, action.dest)
                checked += 1
    assert checked >= 12


def test_grant_set_tokens_and_reset_usage_act_by_name(run: Run, db_path: Path) -> None:
    key = created_key(manage(run, "create", "alice", "10"))

    granted = run(MJCORE, "users", "grant", "alice", "5", "--json")
    adjusted = run(MJCORE, "users", "set-tokens", "alice", "40", "--json")
    by_name = run(MJCORE, "users", "reset-usage", "alice", "--json")
    by_key = run(MJCORE, "users", "reset-usage", key, "--json")  # the seed's form still works

    assert json.loads(granted.stdout)["token_total"] == 15
    assert json.loads(adjusted.stdout)["token_total"] == 40
    assert json.loads(by_name.stdout)["user_name"] == json.loads(by_key.stdout)["user_name"]
    shown = json.loads(run(MJCORE, "ledger", "show", "alice", "--json").stdout)
    assert [(e["kind"], e["delta"], e["reference"]) for e in shown["entries"]] == [
        ("grant", 10, "account:create"),
        ("grant", 5, "cli:grant"),
        ("adjust", 25, "cli:set-tokens"),
    ]
    assert run(MJCORE, "ledger", "verify").returncode == 0


async def _spend(db_path: Path, name: str, times: int) -> list[str]:
    """``times`` Fireworks tasks of ``name`` accepted (charged), left unfinished."""
    store = await open_store(f"sqlite:///{db_path}")
    try:
        account = await accounts.get_account(store, name)
        return [
            (
                await tasks.reserve_task(
                    store,
                    tasks.draft_task(
                        system_clock,
                        Prices(),
                        account_id=account.id,
                        provider=Provider.FIREWORKS,
                        action="generate",
                        prompt=f"picture {i}",
                    ),
                )
            ).task_id
            for i in range(times)
        ]
    finally:
        await store.close()


def test_a_token_total_below_usage_is_refused_naming_the_negative_balance(
    run: Run, db_path: Path
) -> None:
    key = created_key(manage(run, "create", "alice", "10"))
    asyncio.run(_spend(db_path, "alice", 4))

    by_key = manage(run, "update-tokens", key, "3")
    by_name = run(MJCORE, "users", "set-tokens", "alice", "3")

    for refused in (by_key, by_name):
        assert refused.returncode == 1
        assert "below the 4 tokens already used (the balance would be -1)" in refused.stderr
    assert json.loads(run(MJCORE, "users", "info", "alice", "--json").stdout)["token_total"] == 10


def test_tasks_are_listed_shown_and_failed_with_one_refund(run: Run, db_path: Path) -> None:
    created_key(manage(run, "create", "alice", "10"))
    created_key(manage(run, "create", "bob", "10"))
    first, second = asyncio.run(_spend(db_path, "alice", 2))
    asyncio.run(_spend(db_path, "bob", 1))

    listed = json.loads(run(MJCORE, "tasks", "list", "--user", "alice", "--json").stdout)
    limited = json.loads(run(MJCORE, "tasks", "list", "--limit", "1", "--json").stdout)
    shown = json.loads(run(MJCORE, "tasks", "show", first, "--json").stdout)
    failed = run(MJCORE, "tasks", "fail", first, "--reason", "stuck")
    again = run(MJCORE, "tasks", "fail", first)
    failures = json.loads(run(MJCORE, "tasks", "list", "--status", "failure", "--json").stdout)

    assert [t["task_id"] for t in listed["tasks"]] == [second, first]
    assert (listed["total"], limited["total"], len(limited["tasks"])) == (2, 3, 1)
    assert (shown["user_name"], shown["status"], shown["prompt"]) == (
        "alice",
        "NOT_START",
        "picture 0",
    )
    assert failed.returncode == 0 and f"task {first} failed: 1 credit(s) refunded" in failed.stdout
    assert again.returncode == 0 and "had already failed" in again.stdout
    assert [t["task_id"] for t in failures["tasks"]] == [first]
    assert failures["tasks"][0]["fail_reason"] == "stuck"
    assert json.loads(run(MJCORE, "users", "info", "alice", "--json").stdout)["credits"] == 9
    assert run(MJCORE, "ledger", "verify").returncode == 0


def test_failing_a_task_that_succeeded_changes_nothing(run: Run, db_path: Path) -> None:
    created_key(manage(run, "create", "alice", "10"))
    [task_id] = asyncio.run(_spend(db_path, "alice", 1))
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE task SET status = 'SUCCESS' WHERE task_id = ?", (task_id,))

    result = run(MJCORE, "tasks", "fail", task_id)
    unknown = run(MJCORE, "tasks", "fail", "no-such-task")

    assert result.returncode == 1 and "ended as SUCCESS: nothing changed" in result.stderr
    assert unknown.returncode == 1 and "no task no-such-task" in unknown.stderr
    assert json.loads(run(MJCORE, "users", "info", "alice", "--json").stdout)["credits"] == 9


async def _queue(db_path: Path) -> tuple[str, str]:
    """Two Midjourney jobs of alice with one slot: one running at Discord, one waiting."""
    store = await open_store(f"sqlite:///{db_path}")
    try:
        account = await accounts.get_account(store, "alice")
        mj = MidjourneyService(
            store, system_clock, Prices(), FakeProvider(), FakeMirror(), QueueLimits(1, 5)
        )
        await mj.add_account(pool_account(concurrency=1))
        running = await mj.imagine(account.id, "a fox")
        waiting = await mj.imagine(account.id, "a cat")
        return running.task_id, waiting.task_id
    finally:
        await store.close()


def test_failing_a_midjourney_job_gives_its_queue_place_back(run: Run, db_path: Path) -> None:
    created_key(manage(run, "create", "alice", "10"))
    running, waiting = asyncio.run(_queue(db_path))

    results = [run(MJCORE, "tasks", "fail", task_id) for task_id in (running, waiting)]

    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    verify = run(MJCORE, "ledger", "verify")
    assert verify.returncode == 0, verify.stderr  # the queue counters agree with the tasks
    assert "queue ok: 0 running, 0 waiting" in verify.stdout
    assert json.loads(run(MJCORE, "users", "info", "alice", "--json").stdout)["credits"] == 10


def test_codes_are_listed_and_an_unused_one_disabled(run: Run) -> None:
    issued = json.loads(
        run(MJCORE, "codes", "create", "--credits", "5", "--count", "2", "--json").stdout
    )
    first, second = issued["codes"]

    disabled = run(MJCORE, "codes", "disable", first.lower())
    again = run(MJCORE, "codes", "disable", first)
    unused = json.loads(run(MJCORE, "codes", "list", "--unused", "--json").stdout)
    every = json.loads(run(MJCORE, "codes", "list", "--json").stdout)
    unknown = run(MJCORE, "codes", "disable", "A" * 16)

    assert disabled.returncode == 0 and f"code {first} disabled" in disabled.stdout
    assert again.returncode == 0 and "had already expired" in again.stdout
    assert [c["code"] for c in unused] == [second]
    assert {c["code"]: c["state"] for c in every} == {first: "expired", second: "unused"}
    assert unknown.returncode == 1 and "no redemption code" in unknown.stderr


READ_ONLY = [
    ("users", "info", "alice"),
    ("users", "info-key", "k" * 40),
    ("users", "list"),
    ("stats",),
    ("ledger", "verify"),
    ("ledger", "show", "alice"),
    ("tasks", "list"),
    ("tasks", "show", "t"),
    ("codes", "list"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_commands_never_create_a_database(
    run: Run, tmp_path: Path, command: tuple[str, ...]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [MJCORE, *command],
        env={k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")},
        cwd=elsewhere,  # the default URL, sqlite:///./mjcore.db, is relative to here
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: no database at {elsewhere / 'mjcore.db'} (MJCORE_DATABASE_URL="
        "sqlite:///./mjcore.db); set MJCORE_DATABASE_URL, or create it with `mjcore migrate`"
    ]
    assert list(elsewhere.iterdir()) == []


def test_read_only_commands_refuse_a_schema_that_is_not_current(run: Run, db_path: Path) -> None:
    assert run(MJCORE, "migrate").returncode == 0
    with sqlite3.connect(db_path) as db:
        db.execute(
            "DELETE FROM schema_version WHERE version = (SELECT MAX(version) FROM schema_version)"
        )
        [(missing,)] = db.execute("SELECT MAX(version) + 1 FROM schema_version")

    result = run(MJCORE, "stats")

    assert result.returncode == 1
    assert f"migrations [{missing}] are not applied): run `mjcore migrate`" in result.stderr
    with sqlite3.connect(db_path) as db:  # nothing was migrated behind the operator's back
        assert (missing,) not in list(db.execute("SELECT version FROM schema_version"))


@pytest.mark.parametrize(
    ("url", "driver", "extra"),
    [
        ("mysql://root:pw@127.0.0.1:3306/mjcore", "aiomysql", "mysql"),
        ("postgresql://postgres:pw@127.0.0.1:5432/mjcore", "asyncpg", "postgres"),
    ],
)
@pytest.mark.parametrize("command", [["stats"], ["users", "create", "x"], ["serve"]], ids=" ".join)
def test_a_missing_driver_names_the_extra_to_install(
    run: Run, url: str, driver: str, extra: str, command: list[str]
) -> None:
    # as if the driver were not installed: importing it fails
    script = (
        f"import sys; sys.modules[{driver!r}] = None\n"
        "from entrypoints.cli import main\n"
        f"sys.exit(main({command!r}))"
    )

    result = run(sys.executable, "-c", script, env={"MJCORE_DATABASE_URL": url})

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {'PostgreSQL' if extra == 'postgres' else 'MySQL/MariaDB'} needs its driver"
        f" {driver}, which is not installed: pip install 'mjcore[{extra}]'"
    ]


OVERFLOWS = [
    (("users", "update-tokens", "KEY", "99999999999999999999"), 1),
    (("users", "set-tokens", "alice", "99999999999999999999"), 1),
    (("users", "grant", "alice", "99999999999999999999"), 1),
    (("users", "create", "bob", "99999999999999999999"), 1),
    (("codes", "create", "--credits", "99999999999999999999"), 1),
    (("codes", "create", "--credits", "1", "--count", "99999999999999999999"), 1),
    (("codes", "create", "--credits", "1", "--expires-days", "99999999999999999999"), 2),
    (("users", "list", "--limit", "99999999999999999999"), 2),
    (("users", "list", "--offset", "99999999999999999999"), 2),
    (("codes", "list", "--limit", "99999999999999999999"), 2),
    (("tasks", "list", "--limit", "99999999999999999999"), 2),
    (("ledger", "show", "alice", "--limit", "99999999999999999999"), 2),
    (("serve", "--port", "99999999999999999999"), 2),
    (("serve", "--workers", "99999999999999999999"), 2),
]


def test_overflowing_numbers_are_a_clear_error_not_a_traceback(
    run: Run, db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    created_key(manage(run, "create", "alice", "5"))
    monkeypatch.setenv("MJCORE_DATABASE_URL", f"sqlite:///{db_path}")

    for argv, status in OVERFLOWS:  # in process: an uncaught exception would fail the test
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = int(str(exc.code))
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert code == status, (argv, message)
        assert re.search(r"from \d+ to \d+", message), (argv, message)
    assert json.loads(run(MJCORE, "users", "info", "alice", "--json").stdout)["credits"] == 5


async def _dead_delivery(db_path: Path) -> tuple[str, int]:
    """A failed task whose one delivery gave up; its task id and the delivery's id."""
    store = await open_store(f"sqlite:///{db_path}", 2)
    try:
        account = (await accounts.create_account(store, system_clock, "hooked", 5)).account
        draft = tasks.draft_task(
            system_clock,
            Prices(),
            account_id=account.id,
            provider=Provider.FIREWORKS,
            action="generate",
            prompt="a fox",
            params=with_hooks({}, [Hook("https://hooks.example/in")]),
        )
        task = await tasks.reserve_task(store, draft, started=True)
        await tasks.fail_task(store, system_clock, task.task_id, "upstream said no")
        now = system_clock()
        async with store.unit_of_work() as uow:
            [delivery] = await uow.webhooks.claim(now, now, 10)
            assert delivery.id is not None
            await uow.webhooks.record(
                delivery.id, 1, Outcome(503), DeliveryStatus.DEAD, now, now, "{}"
            )
            await uow.commit()
    finally:
        await store.close()
    return task.task_id, delivery.id


def test_webhooks_are_listed_retried_and_the_secret_printed(run: Run, db_path: Path) -> None:
    assert run(MJCORE, "migrate").returncode == 0
    task_id, delivery_id = asyncio.run(_dead_delivery(db_path))

    failed = json.loads(run(MJCORE, "webhooks", "list", "--failed", "--json").stdout)
    table = run(MJCORE, "webhooks", "list", "--task", task_id).stdout
    retried = run(MJCORE, "webhooks", "retry", str(delivery_id))
    after = json.loads(run(MJCORE, "webhooks", "list", "--failed", "--json").stdout)
    missing = run(MJCORE, "webhooks", "retry", "987654")
    secret = run(MJCORE, "webhooks", "secret").stdout.strip()
    again = run(MJCORE, "webhooks", "secret").stdout.strip()
    chosen = "whsec_" + "A" * 43 + "="
    configured = run(MJCORE, "webhooks", "secret", env={"MJCORE_WEBHOOK_SECRET": chosen})

    [dead] = failed
    assert (dead["id"], dead["task_id"], dead["status"]) == (delivery_id, task_id, "dead")
    assert (dead["event"], dead["attempts"], dead["last_status"]) == ("task.failed", 1, 503)
    assert "task.failed" in table and "dead" in table and "https://hooks.example/in" in table
    assert retried.returncode == 0 and "is due again now" in retried.stdout
    assert after == []
    assert missing.returncode == 1 and "no webhook delivery 987654" in missing.stderr
    assert secret.startswith("whsec_") and secret == again  # kept: every process signs alike
    assert configured.stdout.strip() == chosen


def test_the_pool_is_managed_from_the_cli_and_no_token_is_shown_or_stored_clear(
    run: Run, db_path: Path
) -> None:
    user, bot = "cli-user-token-0123456789abcdef", "cli-bot-token-0123456789abcdef"
    where = ("--guild", "1100000000000000001", "--channel", "1200000000000000002")
    add = (MJCORE, "accounts", "add", "b", *where, "--concurrency", "12", "--mode", "relax")

    added = run(*add, "--bot-token", "--json", stdin=f"{user}\n{bot}\n")

    assert added.returncode == 0, added.stderr
    shown = json.loads(added.stdout)
    assert (shown["name"], shown["concurrency"], shown["mode"]) == ("b", 12, "relax")
    assert shown["own_bot"] is True and shown["state"] == "healthy"
    stored = db_path.read_bytes()
    assert user.encode() not in stored and bot.encode() not in stored  # sealed
    outputs = [added]
    outputs.append(taken := run(*add, stdin=f"{user}\n"))
    assert taken.returncode == 1 and "exists" in taken.stderr
    outputs.append(
        short := run(MJCORE, "accounts", "add", "c", *where[:2], "--channel", "1", stdin="x\n")
    )
    assert short.returncode == 1 and "Traceback" not in short.stderr
    outputs.append(listed := run(MJCORE, "accounts", "list"))
    assert re.search(r"^b\s+healthy\s+0/12", listed.stdout, re.M), listed.stdout
    outputs.append(off := run(MJCORE, "accounts", "disable", "b", "--json"))
    assert json.loads(off.stdout)["state"] == "disabled"
    assert json.loads(off.stdout)["failed_jobs"] == 0
    outputs.append(on := run(MJCORE, "accounts", "enable", "b", "--json"))
    assert json.loads(on.stdout)["state"] == "healthy"
    outputs.append(gone := run(MJCORE, "accounts", "remove", "b"))
    assert gone.returncode == 0, gone.stderr
    outputs.append(missing := run(MJCORE, "accounts", "disable", "b"))
    assert missing.returncode == 1 and "no Discord account named b" in missing.stderr
    outputs.append(empty := run(MJCORE, "accounts", "list", "--json"))
    assert json.loads(empty.stdout) == []
    printed = "".join(o.stdout + o.stderr for o in outputs)
    assert user not in printed and bot not in printed
