"""The image API's bodies and answers (the seed's field names and messages)."""

from __future__ import annotations

from datetime import datetime

from attrs import define

from mjcore.accounts import GIVEN_USER_NAME, USER_NAME
from mjcore.codes import CODE_COUNT, CODE_CREDITS, CODE_EXPIRY_DAYS, CODE_TEXT
from mjcore.discord_accounts import (
    ACCOUNT_CONCURRENCY,
    ACCOUNT_MODE,
    ACCOUNT_NAME,
    ACCOUNT_QUEUE_SIZE,
    DISCORD_TOKEN,
    SNOWFLAKE,
    DiscordAccount,
)
from mjcore.limits import Whole
from mjcore.passwords import GIVEN_PASSWORD, PASSWORD
from mjcore.services import images
from mjcore.services.accounts import Profile
from mjcore.services.reports import Record
from mjcore.services.tasks import PAGE_LIMIT
from mjcore.tasks import TASK_ID
from mjcore.webhooks import Delivery

from .schema import Notifiable, make_converter, rule

CONVERTER = make_converter(lenient=False)
ADMIN_USERS_LIMIT = Whole("limit", 1, 10_000)
ADMIN_USERS_OFFSET = Whole("offset", 0, 10**9)


# -- bodies and queries ---------------------------------------------------------------------


@define(kw_only=True)
class RegisterIn:
    username: str = rule(USER_NAME)
    password: str = rule(PASSWORD)


@define(kw_only=True)
class LoginIn:
    username: str = rule(GIVEN_USER_NAME)
    password: str = rule(GIVEN_PASSWORD)


@define(kw_only=True)
class RedeemIn:
    code: str = rule(CODE_TEXT)


@define(kw_only=True)
class GenerateIn(Notifiable):
    prompt: str = rule(images.PROMPT)
    aspect_ratio: str = rule(images.ASPECT_RATIO, "1:1")
    output_format: str = rule(images.OUTPUT_FORMAT, "png")
    seed: int | None = rule(images.SEED, None)


@define(kw_only=True)
class CodesIn:
    credits: int = rule(CODE_CREDITS)
    count: int = rule(CODE_COUNT, 1)
    expires_in_days: int | None = rule(CODE_EXPIRY_DAYS, None)


@define(kw_only=True)
class DiscordAccountIn:
    """An account for the pool. The tokens are taken, sealed and never shown again."""

    name: str = rule(ACCOUNT_NAME)
    guild_id: str = rule(SNOWFLAKE)
    channel_id: str = rule(SNOWFLAKE)
    user_token: str = rule(DISCORD_TOKEN)
    bot_token: str | None = rule(DISCORD_TOKEN, None)
    concurrency: int = rule(ACCOUNT_CONCURRENCY, 3)
    queue_size: int = rule(ACCOUNT_QUEUE_SIZE, 10)
    mode: str = rule(ACCOUNT_MODE, "any")


@define(kw_only=True)
class RecordsQuery:
    limit: int = rule(PAGE_LIMIT, 20)


@define(kw_only=True)
class AdminRecordsQuery:
    limit: int = rule(PAGE_LIMIT, 50)


@define(kw_only=True)
class WebhooksQuery:
    failed: bool = False  # only the ones that gave up
    task: str | None = rule(TASK_ID, None)
    limit: int = rule(PAGE_LIMIT, 100)


@define(kw_only=True)
class AdminUsersQuery:
    limit: int = rule(ADMIN_USERS_LIMIT, 1000)
    offset: int = rule(ADMIN_USERS_OFFSET, 0)


# -- answers --------------------------------------------------------------------------------


@define
class Error:
    error: str


@define
class Registered:
    message: str
    username: str


@define
class UserBrief:
    username: str
    credits: int
    totalGenerated: int


@define
class UserOut:
    username: str
    credits: int
    totalGenerated: int
    createdAt: int


@define
class LoggedIn:
    message: str
    token: str
    user: UserBrief


@define
class Redeemed:
    message: str
    credits: int
    totalCredits: int


@define
class GeneratedOut:
    message: str
    request_id: str | None
    image_url: str | None
    credits_remaining: int
    seed: int | None
    task_id: str


@define
class RecordOut:
    username: str
    prompt: str
    imageUrl: str | None
    requestId: str
    createdAt: int
    aspectRatio: str | None
    seed: int | None
    provider: str
    taskId: str


@define
class RecordsOut:
    records: list[RecordOut]


@define
class CodesOut:
    message: str
    codes: list[str]
    credits: int


@define
class UsersOut:
    users: list[UserOut]


@define
class StatsOut:
    totalUsers: int
    totalRecords: int
    totalCodes: int
    usedCodes: int
    totalCredits: int


# -- views ----------------------------------------------------------------------------------


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def user_view(profile: Profile) -> UserOut:
    account = profile.account
    return UserOut(
        account.user_name, account.credits, profile.generated, epoch_ms(account.created_at)
    )


def record_view(record: Record) -> RecordOut:
    task = record.task
    return RecordOut(
        username=record.user_name,
        prompt=task.prompt,
        imageUrl=task.image_url,
        requestId=task.provider_ref or task.task_id,
        createdAt=epoch_ms(task.created_at),
        aspectRatio=task.params.get("aspect_ratio"),
        seed=task.result.get("seed", task.params.get("seed")),
        provider=task.provider.value,
        taskId=task.task_id,
    )


@define
class DeliveryOut:
    id: int
    webhook_id: str
    task_id: str
    event: str
    url: str
    status: str
    attempts: int
    next_attempt_at: str
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


@define
class DeliveriesOut:
    deliveries: list[DeliveryOut]


def delivery_view(delivery: Delivery) -> DeliveryOut:
    assert delivery.id is not None
    return DeliveryOut(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        task_id=delivery.task_id,
        event=delivery.event.value,
        url=delivery.url,
        status=delivery.status.value,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at.isoformat(),
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        created_at=delivery.created_at.isoformat(),
        delivered_at=None if delivery.delivered_at is None else delivery.delivered_at.isoformat(),
    )


@define
class DiscordAccountOut:
    """An account of the pool (never a token)."""

    name: str
    guild_id: str
    channel_id: str
    state: str  # healthy, unhealthy, rejected (its token was refused) or disabled
    health_reason: str | None
    last_error: str | None
    running: int
    concurrency: int
    queue_size: int
    mode: str
    own_bot: bool
    jobs: int
    last_used_at: str | None


@define
class DiscordAccountsOut:
    accounts: list[DiscordAccountOut]


@define
class AccountChangeOut:
    account: DiscordAccountOut | None
    failed_jobs: int  # running or waiting on it, failed and refunded by this change


def discord_account_view(account: DiscordAccount) -> DiscordAccountOut:
    return DiscordAccountOut(
        name=account.name,
        guild_id=account.guild_id,
        channel_id=account.channel_id,
        state=account.state,
        health_reason=account.health_reason,
        last_error=account.last_error,
        running=account.running,
        concurrency=account.concurrency,
        queue_size=account.queue_size,
        mode=account.mode.value,
        own_bot=account.bot_token is not None,
        jobs=account.jobs,
        last_used_at=None if account.last_used_at is None else account.last_used_at.isoformat(),
    )
