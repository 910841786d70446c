"""What each ``mjcore`` command does: one core call, its output as text and as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from mjcore.accounts import Account
from mjcore.codes import RedemptionCode
from mjcore.discord_accounts import DiscordAccount, Mode, Secret
from mjcore.ledger import LedgerEntry
from mjcore.services import accounts, codes, midjourney, reports, tasks
from mjcore.services.midjourney import fail_job
from mjcore.tasks import Task, TaskStatus
from mjcore.webhooks import Delivery, new_secret

from .bootstrap import Services
from .http import OUT
from .image_schema import delivery_view, discord_account_view

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
    found = await accounts.find_account(services.store, args.name_or_key)
    account = await accounts.reset_usage_of(services.store, services.clock, found.id)
    return Output(_account_text(account), account_view(account))


async def users_grant(services: Services, args: argparse.Namespace) -> Output:
    account = await accounts.grant_credits(services.store, services.clock, args.name, args.credits)
    return Output(_account_text(account), account_view(account))


async def users_set_tokens(services: Services, args: argparse.Namespace) -> Output:
    account = await accounts.set_tokens(services.store, services.clock, args.name, args.total)
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
    issued = await reports.AdminService(services.store, services.clock).issue_codes(
        args.credits, args.count, args.expires_days
    )
    expires = issued[0].expires_at
    data = {
        "credits": args.credits,
        "expires_at": _when(expires),
        "codes": [c.code for c in issued],
    }
    return Output("\n".join(c.code for c in issued), data)


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def code_state(code: RedemptionCode, now: datetime) -> str:
    if code.redeemed_by is not None:
        return "redeemed"
    return "expired" if code.expired(now) else "unused"


def code_view(code: RedemptionCode, now: datetime) -> dict[str, Any]:
    return {
        "code": code.code,
        "credits": code.credits,
        "state": code_state(code, now),
        "created_at": code.created_at.isoformat(),
        "expires_at": _when(code.expires_at),
        "redeemed_by": code.redeemed_by,
        "redeemed_at": _when(code.redeemed_at),
    }


async def codes_list(services: Services, args: argparse.Namespace) -> Output:
    now = services.clock()
    found = await codes.list_codes(
        services.store, services.clock, args.limit, args.offset, unused_only=args.unused
    )
    rows = [f"{'code':<16}  {'credits':>8}  {'state':<8}  {'created_at':<32}  expires_at"]
    rows.extend(
        f"{code.code:<16}  {code.credits:>8}  {code_state(code, now):<8}"
        f"  {code.created_at.isoformat():<32}  {_when(code.expires_at) or '-'}"
        for code in found
    )
    return Output("\n".join(rows), [code_view(c, now) for c in found])


async def codes_disable(services: Services, args: argparse.Namespace) -> Output:
    before = services.clock()
    code = await codes.disable_code(services.store, services.clock, args.code)
    assert code.expires_at is not None
    text = (
        f"code {code.code} had already expired at {code.expires_at.isoformat()}"
        if code.expires_at < before
        else f"code {code.code} disabled: it expired at {code.expires_at.isoformat()}"
    )
    return Output(text, code_view(code, services.clock()))


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
    lines.extend(
        f"MISMATCH {t.user_name} (id {t.account_id}): token_total {t.token_total}"
        f" vs entries {t.entries_total}; token_use {t.token_use} vs entries {t.entries_use}"
        for t in result.mismatches
    )
    lines.append("ledger ok" if result.ok else f"{len(result.mismatches)} account(s) disagree")
    c, a = queue.counters, queue.actual
    lines.append(
        f"{queue.provider} queue ok: {a.running} running, {a.waiting} waiting"
        if queue.ok
        else f"QUEUE MISMATCH {queue.provider}: counters {c.running} running, {c.waiting}"
        f" waiting; tasks {a.running} running, {a.waiting} waiting"
    )
    lines.extend(
        f"ACCOUNT MISMATCH {name}: counter {counted} running; tasks hold {held} slots"
        for name, (counted, held) in sorted(queue.workers.items())
    )
    ok = result.ok and queue.ok
    data = {
        "ok": ok,
        "queue": {
            "ok": queue.ok,
            "counters": {"running": c.running, "waiting": c.waiting},
            "tasks": {"running": a.running, "waiting": a.waiting},
            "accounts": {n: {"counter": c_, "tasks": h} for n, (c_, h) in queue.workers.items()},
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


def entry_view(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "delta": entry.delta,
        "kind": entry.kind.value,
        "reference": entry.reference,
        "created_at": entry.created_at.isoformat(),
    }


async def ledger_show(services: Services, args: argparse.Namespace) -> Output:
    found = await reports.account_ledger(services.store, args.name)
    account, shown = found.account, found.entries[-args.limit :]
    rows = [
        f"{account.user_name}: token_total {account.token_total}, token_use"
        f" {account.token_use}, credits {account.credits};"
        f" {len(shown)} of {len(found.entries)} entries, oldest first",
        f"{'created_at':<32}  {'kind':<6}  {'delta':>8}  reference",
    ]
    rows.extend(
        f"{entry.created_at.isoformat():<32}  {entry.kind.value:<6}  {entry.delta:>8}"
        f"  {entry.reference}"
        for entry in shown
    )
    data = account_view(account) | {
        "entries_total": len(found.entries),
        "entries": [entry_view(e) for e in shown],
    }
    return Output("\n".join(rows), data)


def task_view(task: Task, user_name: str) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "user_name": user_name,
        "account_id": task.account_id,
        "provider": task.provider.value,
        "action": task.action,
        "status": task.status.value,
        "progress": task.progress,
        "prompt": task.prompt,
        "cost": task.cost,
        "refunded": task.refunded,
        "holds_slot": task.holds_slot,
        "fail_reason": task.fail_reason,
        "image_url": task.image_url,
        "trigger_id": task.trigger_id,
        "msg_id": task.msg_id,
        "msg_hash": task.msg_hash,
        "provider_ref": task.provider_ref,
        "parent_task_id": task.parent_task_id,
        "params": dict(task.params),
        "result": dict(task.result),
        "created_at": task.created_at.isoformat(),
        "started_at": _when(task.started_at),
        "finished_at": _when(task.finished_at),
    }


async def _names(services: Services, found: Sequence[Task]) -> dict[int, str]:
    names: dict[int, str] = {}
    for task in found:
        if task.account_id not in names:
            account = await accounts.get_account_by_id(services.store, task.account_id)
            names[task.account_id] = account.user_name
    return names


async def tasks_list(services: Services, args: argparse.Namespace) -> Output:
    account_id = None
    if args.user is not None:
        account_id = (await accounts.get_account(services.store, args.user)).id
    page = await tasks.list_tasks(
        services.store, account_id, status=args.status, limit=args.limit, offset=args.offset
    )
    names = await _names(services, page.tasks)
    rows = [
        f"{'task_id':<20}  {'user_name':<16}  {'provider':<10}  {'action':<10}  {'status':<11}"
        f"  {'cost':>4}  refunded  created_at"
    ]
    rows.extend(
        f"{t.task_id:<20}  {names[t.account_id]:<16}  {t.provider.value:<10}  {t.action:<10}"
        f"  {t.status.value:<11}  {t.cost:>4}  {'yes' if t.refunded else 'no':<8}"
        f"  {t.created_at.isoformat()}"
        for t in page.tasks
    )
    rows.append(f"{len(page.tasks)} of {page.total} task(s)")
    data = {"total": page.total, "tasks": [task_view(t, names[t.account_id]) for t in page.tasks]}
    return Output("\n".join(rows), data)


def _task_output(task: Task, name: str, first_line: str = "", status: int = EXIT_OK) -> Output:
    view = task_view(task, name)
    lines = [first_line] if first_line else []
    lines += [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in view.items()]
    return Output("\n".join(lines), view, status)


async def tasks_show(services: Services, args: argparse.Namespace) -> Output:
    task = await tasks.get_task(services.store, args.task_id)
    return _task_output(task, (await _names(services, [task]))[task.account_id])


async def tasks_fail(services: Services, args: argparse.Namespace) -> Output:
    before = await tasks.get_task(services.store, args.task_id)
    task = await fail_job(services.store, services.clock, args.task_id, args.reason)
    name = (await _names(services, [task]))[task.account_id]
    if task.status is TaskStatus.SUCCESS:
        return _task_output(
            task, name, f"task {task.task_id} ended as SUCCESS: nothing changed", EXIT_FAILED
        )
    if before.status.terminal:
        return _task_output(task, name, f"task {task.task_id} had already failed")
    refund = f"{task.cost} credit(s) refunded" if task.refunded else "nothing to refund"
    return _task_output(task, name, f"task {task.task_id} failed: {refund}")


def _delivery(delivery: Delivery) -> dict[str, Any]:
    found: dict[str, Any] = OUT.unstructure(delivery_view(delivery))
    return found


async def webhooks_list(services: Services, args: argparse.Namespace) -> Output:
    admin = reports.AdminService(services.store, services.clock)
    found = await admin.deliveries(task_id=args.task, failed=args.failed, limit=args.limit)
    rows = [f"{'id':>8}  {'event':<15}  {'status':<9}  {'tries':>5}  {'last':>4}  url"]
    rows.extend(
        f"{d.id:>8}  {d.event.value:<15}  {d.status.value:<9}  {d.attempts:>5}"
        f"  {d.last_status or '-':>4}  {d.url}"
        for d in found
    )
    return Output("\n".join(rows), [_delivery(d) for d in found])


async def webhooks_retry(services: Services, args: argparse.Namespace) -> Output:
    admin = reports.AdminService(services.store, services.clock)
    delivery = await admin.retry_delivery(args.delivery_id)
    text = f"delivery {delivery.id} ({delivery.webhook_id}) is due again now"
    return Output(text, _delivery(delivery))


async def webhooks_secret(services: Services, args: argparse.Namespace) -> Output:
    secret = services.settings.webhook_secret or await accounts.kept_secret(
        services.store, "webhook_secret", new_secret()
    )
    return Output(secret, {"webhook_secret": secret})


def _pool_account(account: DiscordAccount) -> dict[str, Any]:
    """An account of the pool as the admin API shows it (never a token), with the switch,
    health and failure count the operator's commands act on."""
    shown: dict[str, Any] = OUT.unstructure(discord_account_view(account))
    return shown | {
        "enabled": account.enabled,
        "health": account.health.value,
        "failures": account.failures,
    }


async def accounts_list(services: Services, args: argparse.Namespace) -> Output:
    async with services.store.unit_of_work(readonly=True) as uow:
        found = await uow.discord_accounts.list()
    rows = [f"{'name':<20}  {'state':<9}  {'running':>7}  {'jobs':>6}  {'mode':<5}  why"]
    rows.extend(
        f"{a.name:<20}  {a.state:<9}  {f'{a.running}/{a.concurrency}':>7}  {a.jobs:>6}"
        f"  {a.mode.value:<5}  {a.health_reason or a.last_error or ''}"
        for a in found
    )
    return Output("\n".join(rows), [_pool_account(a) for a in found])


async def accounts_add(services: Services, args: argparse.Namespace) -> Output:
    user_token = sys.stdin.readline().strip()
    bot_token = sys.stdin.readline().strip() if args.bot_token else ""
    account = DiscordAccount(
        args.name,
        args.guild,
        args.channel,
        Secret(user_token),
        Secret(bot_token) if bot_token else None,
        concurrency=args.concurrency,
        queue_size=args.queue_size,
        mode=Mode(args.mode),
    )
    await midjourney.add_discord_account(services.store, services.clock, account)
    added = await midjourney.discord_account(services.store, args.name)
    return Output(f"account {added.name} added to the pool", _pool_account(added))


async def accounts_enable(services: Services, args: argparse.Namespace) -> Output:
    await midjourney.enable_discord_account(services.store, args.name)
    account = await midjourney.discord_account(services.store, args.name)
    return Output(f"account {account.name} is in service", _pool_account(account))


async def accounts_disable(services: Services, args: argparse.Namespace) -> Output:
    failed = await midjourney.disable_discord_account(services.store, services.clock, args.name)
    account = await midjourney.discord_account(services.store, args.name)
    text = f"account {account.name} is disabled; {failed} of its job(s) failed and refunded"
    return Output(text, _pool_account(account) | {"failed_jobs": failed})


async def accounts_remove(services: Services, args: argparse.Namespace) -> Output:
    failed = await midjourney.remove_discord_account(services.store, services.clock, args.name)
    text = f"account {args.name} removed; {failed} of its job(s) failed and refunded"
    return Output(text, {"name": args.name, "failed_jobs": failed})
