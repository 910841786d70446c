"""The ``mjcore`` command line. Exit status: 0 ok, 1 not found or invalid, 2 usage."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from mjcore.accounts import Account
from mjcore.errors import MjcoreError
from mjcore.services import accounts, codes, reports

from .bootstrap import Services, StoreUnavailable, bootstrap
from .settings import Settings, SettingsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Handler = Callable[[Services, argparse.Namespace], Awaitable["Output"]]


class Output:
    """What a command prints: a human text and the same facts as JSON."""

    def __init__(self, text: str, data: Any, status: int = EXIT_OK) -> None:
        self.text, self.data, self.status = text, data, status


def account_view(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "user_name": account.user_name,
        "token_total": account.token_total,
        "token_use": account.token_use,
        "credits": account.credits,
        "disabled": account.disabled,
        "deleted": account.deleted_at is not None,
        "created_at": account.created_at.isoformat(),
        "updated_at": account.updated_at.isoformat(),
    }


def _account_text(account: Account) -> str:
    view = account_view(account)
    return "\n".join(f"{name}: {value}" for name, value in view.items())


async def users_create(services: Services, args: argparse.Namespace) -> Output:
    created = await accounts.create_account(services.store, services.clock, args.name, args.tokens)
    view = account_view(created.account) | {"app_key": created.app_key}
    text = (
        f"created user {created.account.user_name} with {created.account.token_total} tokens\n"
        f"app_key: {created.app_key}\n"
        "Keep this key now: it is shown only once (only its SHA-256 digest is stored)."
    )
    return Output(text, view)


async def users_info(services: Services, args: argparse.Namespace) -> Output:
    account = await accounts.get_account(services.store, args.name)
    return Output(_account_text(account), account_view(account))


async def users_info_key(services: Services, args: argparse.Namespace) -> Output:
    account = await accounts.get_account_by_key(services.store, args.app_key)
    return Output(_account_text(account), account_view(account))


async def users_update_tokens(services: Services, args: argparse.Namespace) -> Output:
    account = await accounts.update_tokens(services.store, services.clock, args.app_key, args.total)
    return Output(_account_text(account), account_view(account))


async def users_reset_usage(services: Services, args: argparse.Namespace) -> Output:
    account = await accounts.reset_usage(services.store, services.clock, args.app_key)
    return Output(_account_text(account), account_view(account))


async def users_list(services: Services, args: argparse.Namespace) -> Output:
    found = await accounts.list_accounts(services.store, args.limit, args.offset)
    rows = [f"{'user_name':<24} {'total':>10} {'used':>10} {'credits':>10}  state"]
    for account in found:
        state = "deleted" if account.deleted_at else "disabled" if account.disabled else "active"
        rows.append(
            f"{account.user_name:<24} {account.token_total:>10} {account.token_use:>10}"
            f" {account.credits:>10}  {state}"
        )
    return Output("\n".join(rows), [account_view(a) for a in found])


async def users_disable(services: Services, args: argparse.Namespace) -> Output:
    account = await accounts.set_disabled(services.store, services.clock, args.name, True)
    return Output(_account_text(account), account_view(account))


async def users_enable(services: Services, args: argparse.Namespace) -> Output:
    account = await accounts.set_disabled(services.store, services.clock, args.name, False)
    return Output(_account_text(account), account_view(account))


async def users_delete(services: Services, args: argparse.Namespace) -> Output:
    account = await accounts.delete_account(services.store, services.clock, args.name)
    return Output(_account_text(account), account_view(account))


async def users_rotate_key(services: Services, args: argparse.Namespace) -> Output:
    rotated = await accounts.rotate_key(services.store, services.clock, args.name)
    text = (
        f"new app key for {rotated.account.user_name}: {rotated.app_key}\n"
        "The old key no longer works. Keep this one now: it is shown only once."
    )
    return Output(text, account_view(rotated.account) | {"app_key": rotated.app_key})


async def users_set_password(services: Services, args: argparse.Namespace) -> Output:
    password = sys.stdin.readline().rstrip("\r\n")
    account = await accounts.set_password(
        services.store, services.clock, services.hasher, args.name, password
    )
    return Output(f"password set for {account.user_name}", account_view(account))


async def codes_create(services: Services, args: argparse.Namespace) -> Output:
    expires = services.clock() + timedelta(days=args.expires_days) if args.expires_days else None
    issued = await codes.issue_codes(
        services.store, services.clock, args.credits, args.count, expires_at=expires
    )
    data = {
        "credits": args.credits,
        "expires_at": expires.isoformat() if expires else None,
        "codes": [c.code for c in issued],
    }
    return Output("\n".join(c.code for c in issued), data)


async def stats(services: Services, args: argparse.Namespace) -> Output:
    counts = await reports.stats(services.store)
    data = {
        "totalUsers": counts.accounts,
        "totalTasks": counts.tasks,
        "totalRecords": counts.successful_tasks,
        "totalCodes": counts.codes,
        "usedCodes": counts.used_codes,
        "totalCredits": counts.credits,
    }
    return Output("\n".join(f"{name}: {value}" for name, value in data.items()), data)


async def migrate(services: Services, args: argparse.Namespace) -> Output:
    applied = list(services.applied_migrations)
    text = f"applied migrations {applied}" if applied else "schema is up to date"
    return Output(text, {"applied": applied})


async def ledger_verify(services: Services, args: argparse.Namespace) -> Output:
    result = await reports.verify_ledger(services.store)
    queue = await reports.verify_queue(services.store)
    lines = [f"checked {result.accounts_checked} accounts"]
    for t in result.mismatches:
        lines.append(
            f"MISMATCH {t.user_name} (id {t.account_id}): token_total {t.token_total}"
            f" vs entries {t.entries_total}; token_use {t.token_use} vs entries {t.entries_use}"
        )
    lines.append("ledger ok" if result.ok else f"{len(result.mismatches)} account(s) disagree")
    c, a = queue.counters, queue.actual
    lines.append(
        f"{queue.provider} queue ok: {a.running} running, {a.waiting} waiting"
        if queue.ok
        else f"QUEUE MISMATCH {queue.provider}: counters {c.running} running, {c.waiting}"
        f" waiting; tasks {a.running} running, {a.waiting} waiting"
    )
    ok = result.ok and queue.ok
    data = {
        "ok": ok,
        "queue": {
            "ok": queue.ok,
            "counters": {"running": c.running, "waiting": c.waiting},
            "tasks": {"running": a.running, "waiting": a.waiting},
        },
        "accounts_checked": result.accounts_checked,
        "mismatches": [
            {
                "account_id": t.account_id,
                "user_name": t.user_name,
                "token_total": t.token_total,
                "entries_total": t.entries_total,
                "token_use": t.token_use,
                "entries_use": t.entries_use,
            }
            for t in result.mismatches
        ],
    }
    return Output("\n".join(lines), data, EXIT_OK if ok else EXIT_FAILED)


def _whole(low: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    parser = argparse.ArgumentParser(prog="mjcore", parents=[common], description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def leaf(group: Any, name: str, handler: Handler | None, help_text: str) -> Any:
        sub = group.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    serve = leaf(commands, "serve", None, "create or migrate the schema, then serve both APIs")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=_whole(1), default=8086)
    serve.add_argument("--workers", type=_whole(1), default=1)
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="proxies whose X-Forwarded-For is trusted for the client address (comma-separated"
        " IPs or networks, '*' for any); default: $FORWARDED_ALLOW_IPS or 127.0.0.1",
    )
    leaf(
        commands,
        "listen",
        None,
        "run the Discord listener alone (MJCORE_DISCORD_BOT_TOKEN); one per channel holds"
        " the lease, others stand by",
    )

    users = commands.add_parser("users", help="manage accounts (the seed's manage_users verbs)")
    verbs = users.add_subparsers(dest="verb", required=True, metavar="VERB")
    sub = leaf(verbs, "create", users_create, "create an account; prints its app key once")
    sub.add_argument("name")
    sub.add_argument("tokens", nargs="?", type=_whole(0), default=accounts.DEFAULT_TOKENS)
    leaf(verbs, "info", users_info, "show an account by user name").add_argument("name")
    leaf(verbs, "info-key", users_info_key, "show an account by app key").add_argument("app_key")
    sub = leaf(verbs, "update-tokens", users_update_tokens, "set token_total (ledger: adjust)")
    sub.add_argument("app_key")
    sub.add_argument("total", type=_whole(0))
    sub = leaf(verbs, "reset-usage", users_reset_usage, "set token_use to 0 (ledger: reset)")
    sub.add_argument("app_key")
    sub = leaf(verbs, "list", users_list, "list accounts")
    sub.add_argument("--limit", type=_whole(1), default=1000)
    sub.add_argument("--offset", type=_whole(0), default=0)
    leaf(verbs, "disable", users_disable, "stop an account's key").add_argument("name")
    leaf(verbs, "enable", users_enable, "re-enable a disabled account").add_argument("name")
    leaf(verbs, "delete", users_delete, "delete an account (its ledger stays)").add_argument("name")
    leaf(verbs, "rotate-key", users_rotate_key, "new app key; prints it once").add_argument("name")
    leaf(
        verbs, "set-password", users_set_password, "image-API password, read from stdin"
    ).add_argument("name")

    code_group = commands.add_parser("codes", help="redemption codes")
    code_verbs = code_group.add_subparsers(dest="verb", required=True, metavar="VERB")
    sub = leaf(code_verbs, "create", codes_create, "issue redemption codes")
    sub.add_argument("--credits", type=_whole(1), required=True)
    sub.add_argument("--count", type=_whole(1), default=1)
    sub.add_argument("--expires-days", type=_whole(1), default=None)

    leaf(commands, "stats", stats, "service totals")
    leaf(commands, "migrate", migrate, "create or migrate the schema")
    ledger = commands.add_parser("ledger", help="the credit ledger")
    ledger_verbs = ledger.add_subparsers(dest="verb", required=True, metavar="VERB")
    leaf(
        ledger_verbs, "verify", ledger_verify, "check every account's counters against its entries"
    )
    return parser


def _print(output: Output, as_json: bool) -> None:
    stream = sys.stdout if output.status == EXIT_OK else sys.stderr
    if as_json:
        print(json.dumps(output.data, ensure_ascii=False, indent=2), file=sys.stdout)
    else:
        print(output.text, file=stream)


async def _run(handler: Handler, settings: Settings, args: argparse.Namespace) -> Output:
    services = await bootstrap(settings)
    try:
        return await handler(services, args)
    finally:
        await services.aclose()


def _fail(message: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": message}, ensure_ascii=False))
    else:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = build_parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        return _fail(str(exc), as_json)
    if args.handler is None and args.command == "listen":
        from .server import listen

        return listen(settings)
    if args.handler is None:
        from .server import serve

        return serve(settings, args.host, args.port, args.workers, args.forwarded_allow_ips)
    try:
        output = asyncio.run(_run(args.handler, settings, args))
    except (MjcoreError, StoreUnavailable) as exc:
        return _fail(str(exc), as_json)
    _print(output, as_json)
    return output.status
