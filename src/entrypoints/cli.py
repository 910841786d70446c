"""The ``mjcore`` command line. Exit status: 0 ok, 1 not found or invalid, 2 usage."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mjcore.codes import CODE_EXPIRY_DAYS
from mjcore.discord_accounts import Mode
from mjcore.errors import InvalidAmount, MjcoreError
from mjcore.limits import parse_whole
from mjcore.services import accounts, tasks
from mjcore.tasks import TaskStatus

from .bootstrap import StoreUnavailable, bootstrap, version
from .commands import (
    EXIT_FAILED,
    EXIT_OK,
    Handler,
    Output,
    accounts_add,
    accounts_disable,
    accounts_enable,
    accounts_list,
    accounts_remove,
    codes_create,
    codes_disable,
    codes_list,
    ledger_show,
    ledger_verify,
    migrate,
    stats,
    tasks_fail,
    tasks_list,
    tasks_show,
    users_create,
    users_delete,
    users_disable,
    users_enable,
    users_grant,
    users_info,
    users_info_key,
    users_list,
    users_reset_usage,
    users_rotate_key,
    users_set_password,
    users_set_tokens,
    users_update_tokens,
    webhooks_list,
    webhooks_retry,
    webhooks_secret,
)
from .settings import Settings, SettingsError


def _whole(low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high`` (a usage error otherwise, exit 2)."""

    def parse(raw: str) -> int:
        try:
            return parse_whole(raw, low, high, "it")
        except InvalidAmount:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}, got {raw!r}"
            ) from None

    return parse


def _amount(raw: str) -> int:
    """A whole number; its range is the core's to check (exit 1 with the rule)."""
    try:
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None


def _status(raw: str) -> TaskStatus:
    try:
        return TaskStatus(raw.upper())
    except ValueError:
        names = ", ".join(s.value for s in TaskStatus)
        raise argparse.ArgumentTypeError(f"must be one of {names}") from None


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


MAX_LIST = 100_000
MAX_OFFSET = 10**9


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    parser = argparse.ArgumentParser(
        prog="mjcore", parents=[common], description=__doc__, formatter_class=_Help
    )
    parser.add_argument("--version", action="version", version=f"mjcore {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help_text: str) -> Any:
        sub = commands.add_parser(
            name, help=help_text, description=help_text, formatter_class=_Help
        )
        return sub.add_subparsers(dest="verb", required=True, metavar="VERB")

    def leaf(
        parent: Any, name: str, handler: Handler | None, help_text: str, readonly: bool = False
    ) -> Any:
        sub = parent.add_parser(
            name, parents=[common], help=help_text, description=help_text, formatter_class=_Help
        )
        sub.set_defaults(handler=handler, readonly=readonly)
        return sub

    def name_arg(sub: Any) -> None:
        sub.add_argument("name", help="the account's user name")

    def key_arg(sub: Any) -> None:
        sub.add_argument("app_key", help="the account's app key")

    def page(sub: Any, limit: int, high: int = MAX_LIST) -> None:
        sub.add_argument("--limit", type=_whole(1, high), default=limit, help="at most this many")
        sub.add_argument(
            "--offset", type=_whole(0, MAX_OFFSET), default=0, help="skip this many first"
        )

    serve = leaf(commands, "serve", None, "create or migrate the schema, then serve both APIs")
    serve.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 (SPEC: serve on every interface by default)
        help="address to listen on",
    )
    serve.add_argument("--port", type=_whole(1, 65535), default=8086, help="port to listen on")
    serve.add_argument(
        "--workers", type=_whole(1, 512), default=1, help="server processes (uvicorn workers)"
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="try-it mode: stand-in Midjourney and Fireworks (placeholder images), a seeded"
        " demo user and admin printed at start; refused when real credentials are set",
    )
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

    users = group("users", "manage accounts (the seed's manage_users verbs)")
    sub = leaf(users, "create", users_create, "create an account; prints its app key once")
    name_arg(sub)
    sub.add_argument(
        "tokens", nargs="?", type=_amount, default=accounts.DEFAULT_TOKENS, help="token_total"
    )
    name_arg(leaf(users, "info", users_info, "show an account by user name", readonly=True))
    key_arg(leaf(users, "info-key", users_info_key, "show an account by app key", readonly=True))
    sub = leaf(users, "list", users_list, "list accounts (deleted ones too)", readonly=True)
    page(sub, 1000)
    sub = leaf(users, "grant", users_grant, "add credits to token_total (ledger: grant)")
    name_arg(sub)
    sub.add_argument("credits", type=_amount, help="credits to add (1 or more)")
    sub = leaf(users, "set-tokens", users_set_tokens, "set token_total (ledger: adjust)")
    name_arg(sub)
    sub.add_argument("total", type=_amount, help="the new token_total, at least token_use")
    sub = leaf(
        users, "update-tokens", users_update_tokens, "set token_total by app key (ledger: adjust)"
    )
    key_arg(sub)
    sub.add_argument("total", type=_amount, help="the new token_total, at least token_use")
    leaf(
        users, "reset-usage", users_reset_usage, "set token_use to 0 (ledger: reset)"
    ).add_argument(
        "name_or_key",
        help="the account's user name or its app key (a text that is one account's name and"
        " another's key is refused)",
    )
    name_arg(leaf(users, "disable", users_disable, "stop an account's key and logins"))
    name_arg(leaf(users, "enable", users_enable, "re-enable a disabled account"))
    name_arg(leaf(users, "delete", users_delete, "delete an account (its ledger stays)"))
    name_arg(leaf(users, "rotate-key", users_rotate_key, "new app key; prints it once"))
    name_arg(leaf(users, "set-password", users_set_password, "image-API password, from stdin"))

    code_verbs = group("codes", "redemption codes")
    sub = leaf(code_verbs, "create", codes_create, "issue redemption codes")
    sub.add_argument("--credits", type=_amount, required=True, help="credits each code gives")
    sub.add_argument("--count", type=_amount, default=1, help="how many codes (1-1000)")
    sub.add_argument(
        "--expires-days",
        type=_whole(CODE_EXPIRY_DAYS.low, CODE_EXPIRY_DAYS.high),
        default=None,
        help="the codes expire this many days from now (default: never)",
    )
    sub = leaf(code_verbs, "list", codes_list, "list codes, newest first", readonly=True)
    sub.add_argument("--unused", action="store_true", help="only codes that can still be redeemed")
    page(sub, 1000)
    leaf(code_verbs, "disable", codes_disable, "stop an unused code: it expires now").add_argument(
        "code", help="the code (any case; spaces and dashes ignored)"
    )

    leaf(commands, "stats", stats, "service totals", readonly=True)
    leaf(commands, "migrate", migrate, "create or migrate the schema")
    ledger = group("ledger", "the credit ledger")
    leaf(
        ledger,
        "verify",
        ledger_verify,
        "check every account's counters against its entries",
        readonly=True,
    )
    sub = leaf(ledger, "show", ledger_show, "an account's ledger entries", readonly=True)
    name_arg(sub)
    sub.add_argument(
        "--limit", type=_whole(1, MAX_LIST), default=100, help="the newest this many entries"
    )

    task_verbs = group("tasks", "generation tasks of every account and provider")
    sub = leaf(task_verbs, "list", tasks_list, "list tasks, newest first", readonly=True)
    sub.add_argument(
        "--status",
        type=_status,
        default=None,
        help="only tasks in this status (NOT_START, SUBMITTED, IN_PROGRESS, SUCCESS, FAILURE;"
        " default: any)",
    )
    sub.add_argument("--user", default=None, help="only this account's (default: everyone's)")
    page(sub, 20, tasks.MAX_PAGE)
    leaf(task_verbs, "show", tasks_show, "one task, every field", readonly=True).add_argument(
        "task_id", help="the task's id"
    )
    sub = leaf(
        task_verbs,
        "fail",
        tasks_fail,
        "end an unfinished task as FAILURE, refunded once (a Midjourney job's queue place is"
        " given back; a running server starts what waits)",
    )
    sub.add_argument("task_id", help="the task's id")
    sub.add_argument("--reason", default="failed by the operator", help="the fail_reason")

    pool = group("accounts", "the pool of Discord accounts that run Midjourney jobs")
    leaf(pool, "list", accounts_list, "every account and its state (never a token)", True)
    sub = leaf(
        pool,
        "add",
        accounts_add,
        "add an account; its user token is read from stdin (and its bot's from the next line"
        " with --bot-token), never from the command line",
    )
    sub.add_argument("name", help="a name for it (letters, digits, _ . -)")
    sub.add_argument("--guild", required=True, help="the Discord server (guild) id")
    sub.add_argument("--channel", required=True, help="the channel its jobs are sent in")
    sub.add_argument(
        "--concurrency", type=_amount, default=3, help="jobs at once (Midjourney plan: 3, 12)"
    )
    sub.add_argument(
        "--queue-size", type=_amount, default=10, help="follow-ups that may wait for it"
    )
    sub.add_argument("--mode", choices=[m.value for m in Mode], default="any", help="speed")
    sub.add_argument(
        "--bot-token", action="store_true", help="a second stdin line is its listener's bot token"
    )
    for verb, handler, text in (
        ("enable", accounts_enable, "put an account back in service (healthy again)"),
        ("disable", accounts_disable, "take an account out of service: its jobs fail, refunded"),
        ("remove", accounts_remove, "disable an account, then forget it"),
    ):
        leaf(pool, verb, handler, text).add_argument("name", help="the account's name")

    hook_verbs = group("webhooks", "client callbacks (the outbox)")
    sub = leaf(hook_verbs, "list", webhooks_list, "deliveries, newest first", readonly=True)
    sub.add_argument("--failed", action="store_true", help="only the ones that gave up")
    sub.add_argument("--task", default=None, help="only this task's (default: any)")
    sub.add_argument("--limit", type=_whole(1, MAX_LIST), default=100, help="at most this many")
    leaf(hook_verbs, "retry", webhooks_retry, "send a delivery again, now").add_argument(
        "delivery_id", type=_whole(1, 2**62), help="the delivery's id (from webhooks list)"
    )
    leaf(
        hook_verbs,
        "secret",
        webhooks_secret,
        "print the signing secret receivers verify with (MJCORE_WEBHOOK_SECRET, else the one"
        " kept in the database)",
    )
    return parser


def _print(output: Output, as_json: bool) -> None:
    stream = sys.stdout if output.status == EXIT_OK else sys.stderr
    if as_json:
        print(json.dumps(output.data, ensure_ascii=False, indent=2), file=sys.stdout)
    else:
        print(output.text, file=stream)


async def _run(handler: Handler, settings: Settings, args: argparse.Namespace) -> Output:
    services = await bootstrap(settings, readonly=args.readonly)
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

        if args.demo:
            from .server import demo_settings

            settings = demo_settings(settings, os.environ)
        return serve(settings, args.host, args.port, args.workers, args.forwarded_allow_ips)
    try:
        output = asyncio.run(_run(args.handler, settings, args))
    except (MjcoreError, StoreUnavailable) as exc:
        return _fail(str(exc), as_json)
    try:
        _print(output, as_json)
    except BrokenPipeError:  # `mjcore ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return output.status
