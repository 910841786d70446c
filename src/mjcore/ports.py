"""The ports: what the core needs from storage. Adapters fit them structurally."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from attrs import asdict, frozen

from .accounts import Account
from .codes import RedemptionCode
from .discord_accounts import DiscordAccount, Health
from .idempotency import KeyRecord
from .ledger import LedgerEntry, Tally
from .tasks import Provider, Task, TaskStatus
from .webhooks import Delivery, DeliveryStatus, Outcome


@frozen
class NewAccount:
    """The fields of an account about to be created."""

    user_name: str
    app_key_digest: str
    token_total: int
    created_at: datetime
    password_hash: str | None = None


@frozen
class TaskQuery:
    """Which tasks to list: one account's (or all), optionally by status, newest first."""

    account_id: int | None = None
    status: TaskStatus | None = None
    limit: int = 20
    offset: int = 0


@frozen
class Counts:
    """Totals for ``stats``."""

    accounts: int
    tasks: int
    successful_tasks: int
    codes: int
    used_codes: int
    credits: int


@frozen
class QueueCounts:
    running: int  # tasks holding a slot
    waiting: int  # tasks accepted, not started


@frozen
class AccountChanges:
    """What may change about an account besides its counters (None: leave it)."""

    disabled: bool | None = None
    deleted_at: datetime | None = None
    password_hash: str | None = None
    app_key_digest: str | None = None
    token_version: int | None = None

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}


class AccountRepository(Protocol):
    async def add(self, new: NewAccount) -> Account:
        """Insert; raise :class:`~mjcore.errors.UserNameTaken` if the name is in use."""

    async def get(self, account_id: int, *, for_update: bool = False) -> Account | None: ...

    async def by_name(self, user_name: str, *, for_update: bool = False) -> Account | None: ...

    async def by_key_digest(self, digest: str) -> Account | None: ...

    async def by_key_digest_with_task(
        self, digest: str, task_id: str
    ) -> tuple[Account | None, Task | None]:
        """The key's account and, if it is that account's, the task: one read (a task
        looked at by its owner's key, the most frequent request)."""

    async def list(self, limit: int, offset: int = 0) -> Sequence[Account]:
        """Accounts (deleted ones too) by id."""

    async def debit(self, account_id: int, cost: int, now: datetime) -> bool:
        """``token_use += cost`` only if the balance covers it; True if it did."""

    async def change_use(self, account_id: int, delta: int, now: datetime) -> None:
        """``token_use += delta`` unconditionally (refunds and resets)."""

    async def change_total(self, account_id: int, delta: int, now: datetime) -> None:
        """``token_total += delta`` unconditionally (grants and adjustments)."""

    async def update_flags(self, account_id: int, now: datetime, changes: AccountChanges) -> None:
        """Set whichever of the fields ``changes`` gives (not None)."""


class LedgerRepository(Protocol):
    async def append(self, entry: LedgerEntry) -> None: ...

    async def entries(self, account_id: int) -> Sequence[LedgerEntry]:
        """The account's entries, oldest first."""

    async def tallies(self) -> Sequence[Tally]:
        """Every account's counters beside the sums of its entries."""


class CodeRepository(Protocol):
    async def add_many(self, codes: Sequence[RedemptionCode]) -> None:
        """Insert codes; raise :class:`~mjcore.errors.Conflict` on a duplicate."""

    async def get(self, code: str) -> RedemptionCode | None: ...

    async def redeem(self, code: str, account_id: int, now: datetime) -> bool:
        """Mark the code used by ``account_id`` if unused and unexpired; True if it did."""

    async def expire(self, code: str, now: datetime) -> bool:
        """Set the code's ``expires_at`` to ``now`` if it is unused and unexpired; True if
        it did.

        One guarded update (``... WHERE redeemed_by IS NULL AND (expires_at IS NULL OR
        expires_at > now)``) whose row count decides, so it cannot interleave with a
        redemption: either the code is redeemed or it expires, never both.
        """

    async def list(
        self, limit: int, offset: int = 0, *, redeemable_at: datetime | None = None
    ) -> Sequence[RedemptionCode]:
        """Codes, newest first (then by code); with ``redeemable_at``, only those unused and
        unexpired at that time."""


class TaskRepository(Protocol):
    async def add(self, task: Task) -> None: ...

    async def get(self, task_id: str, *, for_update: bool = False) -> Task | None: ...

    async def by_trigger(self, trigger_id: str) -> Sequence[Task]:
        """Tasks sharing a provider trigger id, oldest first."""

    async def save(self, task: Task, expected: TaskStatus) -> bool:
        """Write the task's mutable fields if its stored status is still ``expected``."""

    async def mark_refunded(self, task_id: str) -> bool:
        """Set ``refunded`` if it was not set; True for the one caller that set it."""

    async def query(self, query: TaskQuery) -> Sequence[Task]: ...

    async def count(self, query: TaskQuery) -> int: ...

    async def count_by_account(self, status: TaskStatus) -> Mapping[int, int]:
        """How many tasks in ``status`` each account has (accounts with none are absent)."""

    async def by_msg_id(self, msg_id: str) -> Sequence[Task]:
        """Tasks whose finished message has this id (one, unless ids were reused)."""

    async def count_holding(self, provider: Provider) -> int:
        """Tasks of ``provider`` holding a concurrency slot (a full count, for checks)."""

    async def count_waiting(self, provider: Provider) -> int:
        """Tasks of ``provider`` accepted but not yet started (a full count, for checks)."""

    async def unfinished_of(
        self, provider: Provider, account_id: int, limit: int
    ) -> Sequence[Task]:
        """``account_id``'s tasks of ``provider`` that have not ended, oldest first."""

    async def next_waiting(self, provider: Provider, worker: str) -> Task | None:
        """The oldest waiting task of ``provider`` that ``worker`` may run: one pinned to
        it (a follow-up of its grid) or to no worker."""

    async def count_waiting_for(self, provider: Provider, worker: str) -> int:
        """Waiting tasks pinned to ``worker``."""

    async def unfinished_on(self, provider: Provider, worker: str, limit: int) -> Sequence[Task]:
        """Tasks of ``provider`` on ``worker`` (running there, or waiting for it) that have
        not ended, oldest first."""

    async def count_holding_by_worker(self, provider: Provider) -> Mapping[str, int]:
        """Slots held per worker (workers holding none are absent; a full count, for checks)."""

    async def set_holds_slot(self, task_id: str, held: bool) -> bool:
        """Take or free the task's slot; True only if this call changed it."""

    async def stale(
        self, provider: Provider, idle_before: datetime, started_before: datetime, limit: int
    ) -> Sequence[Task]:
        """Running (``SUBMITTED``/``IN_PROGRESS``) tasks of ``provider`` whose last event
        (or start, if none) is older than ``idle_before`` or whose start is older than
        ``started_before``; oldest first."""


class QueueRepository(Protocol):
    """A provider's queue counters, kept in one row that every slot change locks."""

    async def lock(self, provider: Provider) -> QueueCounts:
        """Lock the queue until the unit of work ends; return its counters."""

    async def change(self, provider: Provider, *, running: int = 0, waiting: int = 0) -> None:
        """Move the counters, in the same transaction as the task changes they count."""

    async def peek(self, provider: Provider) -> QueueCounts:
        """The counters as last committed, without locking or waiting for the lock
        (reports and metrics; never a basis for admitting a job)."""


class DiscordAccountRepository(Protocol):
    """The pool of Discord accounts. ``running`` moves only with the queue's lock held
    (:meth:`QueueRepository.lock`), in the transaction that moves the tasks it counts."""

    async def list(self) -> Sequence[DiscordAccount]:
        """Every account, by name."""

    async def get(self, name: str) -> DiscordAccount | None: ...

    async def add(self, account: DiscordAccount) -> None:
        """Insert; :class:`~mjcore.discord_accounts.AccountNameTaken` if the name or the
        channel is already in the pool."""

    async def update(self, account: DiscordAccount) -> bool:
        """Write what the operator sets (ids, tokens, concurrency, queue size, mode);
        True if the account exists."""

    async def set_enabled(self, name: str, enabled: bool) -> bool:
        """The operator's switch; True if the account exists."""

    async def set_health(
        self, name: str, health: Health, reason: str | None, error: str | None
    ) -> bool:
        """Record the account's health and why; True if the account exists."""

    async def change_running(self, name: str, delta: int, now: datetime | None = None) -> None:
        """Move the account's running jobs; a job handed to it (``delta`` > 0) counts
        toward ``jobs`` and marks it used at ``now``."""

    async def record_failure(self, name: str, error: str) -> int:
        """One more refused interaction in a row; how many now."""

    async def clear_failures(self, name: str) -> None:
        """An interaction went through: the run of failures is over."""

    async def remove(self, name: str) -> bool: ...


class SettingRepository(Protocol):
    """Small named values the service keeps for itself (e.g. a generated JWT secret)."""

    async def get(self, name: str) -> str | None: ...

    async def put_if_absent(self, name: str, value: str) -> str:
        """Store ``value`` unless one exists; return the stored one."""


@frozen
class UploadRecord:
    """A file a customer handed to the provider, by the trigger id it was stored under."""

    trigger_id: str
    account_id: int
    upload_filename: str
    created_at: datetime
    worker: str | None = None  # the Discord account it was uploaded through


class UploadRepository(Protocol):
    async def add(self, upload: UploadRecord) -> None: ...

    async def get(self, trigger_id: str) -> UploadRecord | None: ...


class WebhookRepository(Protocol):
    """The outbox of client callbacks."""

    async def add(self, delivery: Delivery) -> None:
        """Insert, in the caller's transaction (the one moving the task)."""

    async def add_progress(self, delivery: Delivery) -> bool:
        """Insert a progress delivery unless one for the same task and URL is still waiting
        for its first attempt (that one will carry the newest progress); True if inserted."""

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> Sequence[Delivery]:
        """Pending deliveries due at ``now``, oldest first, each with ``attempts`` moved on
        by one and ``next_attempt_at`` set to ``lease_until``.

        Rows another transaction is claiming are skipped (``FOR UPDATE SKIP LOCKED``; the
        write lock on SQLite), so several processes never take the same attempt.
        """

    async def fix_payload(self, delivery_id: int, payload: str) -> str | None:
        """Keep ``payload`` as the delivery's body unless it has one already; the body
        kept (None if the delivery is gone). Written before the first attempt is sent, so
        an attempt made again after a crash sends the same bytes."""

    async def record(
        self,
        delivery_id: int,
        attempt: int,
        outcome: Outcome,
        status: DeliveryStatus,
        next_attempt_at: datetime,
        now: datetime,
        payload: str,
    ) -> bool:
        """Write what attempt number ``attempt`` gave, unless the delivery moved on since
        (a later claim); True if written."""

    async def get(self, delivery_id: int) -> Delivery | None: ...

    async def list(
        self, *, task_id: str | None, statuses: Sequence[DeliveryStatus] | None, limit: int
    ) -> Sequence[Delivery]:
        """Newest first."""

    async def retry(self, delivery_id: int, now: datetime) -> bool:
        """Make a delivery that is not pending due again now; True if it was changed."""


class IdempotencyRepository(Protocol):
    async def claim(self, record: KeyRecord) -> KeyRecord | None:
        """Take ``record``'s key for its account if nobody holds it, or if it expired
        (None), else return the record that holds it. Concurrent claims of one key wait for
        each other (the unique key's lock): exactly one wins."""

    async def complete(
        self, account_id: int, key: str, claim_id: str, status: int, body: str
    ) -> bool:
        """Keep the answer of the key if ``claim_id`` still holds it; True if it did."""

    async def purge(self, now: datetime) -> int:
        """Forget expired keys; how many."""


class LeaseRepository(Protocol):
    """Named leases (e.g. "the listener of channel C"): one holder at a time, until expiry."""

    async def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take or renew ``name`` for ``holder`` until ``until``; True if ``holder`` has it.

        It is taken only if free, expired at ``now``, or already ``holder``'s: one guarded
        update whose row count decides, so two processes never both hold it.
        """

    async def release(self, name: str, holder: str) -> None:
        """Give ``name`` up if ``holder`` has it (another process may take it at once)."""

    async def holder(self, name: str, now: datetime) -> str | None:
        """Who holds ``name`` at ``now`` (None: nobody, or the lease expired)."""


class StatsRepository(Protocol):
    async def counts(self) -> Counts: ...


class UnitOfWork(Protocol):
    """One transaction. Changes are kept only if :meth:`commit` is called."""

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def ledger(self) -> LedgerRepository: ...

    @property
    def codes(self) -> CodeRepository: ...

    @property
    def tasks(self) -> TaskRepository: ...

    @property
    def queue(self) -> QueueRepository: ...

    @property
    def discord_accounts(self) -> DiscordAccountRepository: ...

    @property
    def settings(self) -> SettingRepository: ...

    @property
    def leases(self) -> LeaseRepository: ...

    @property
    def uploads(self) -> UploadRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    @property
    def idempotency(self) -> IdempotencyRepository: ...

    @property
    def stats(self) -> StatsRepository: ...

    async def commit(self) -> None: ...

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Store(Protocol):
    """A storage backend: hands out units of work."""

    def unit_of_work(self, *, readonly: bool = False) -> UnitOfWork:
        """A new transaction; ``readonly`` promises no writes (lets SQLite skip the lock)."""

    async def ping(self) -> None:
        """Raise if the database does not answer."""

    async def migrate(self) -> Sequence[int]:
        """Bring the schema up to date; return the versions applied now."""

    async def pending_migrations(self) -> Sequence[int]:
        """The shipped schema versions not applied yet (empty: the schema is current).

        Only reads: it creates nothing, not even the version table.
        """

    async def close(self) -> None: ...


@frozen
class Upload:
    """A file handed to the provider for a later job (Discord's two-step upload)."""

    upload_filename: str
    upload_url: str


class MidjourneyProvider(Protocol):
    """Talks to Midjourney through one of the pool's Discord accounts. Raises
    :class:`~mjcore.errors.ProviderError`; :class:`~mjcore.discord_accounts.AccountRejected`
    when Discord refuses the account's token. A 429 delays only that account."""

    async def submit(self, task: Task, account: DiscordAccount) -> None:
        """Send the job: the slash command or the button press the task describes."""

    async def upload(
        self, account: DiscordAccount, filename: str, data: bytes, content_type: str
    ) -> Upload: ...

    async def send_message(self, account: DiscordAccount, upload_filename: str) -> str:
        """Post an uploaded file as a message; return its public (CDN) URL."""

    async def check(self, account: DiscordAccount) -> bool:
        """Does Discord still accept the account's token (``GET /users/@me``)?"""


class TargetGuard(Protocol):
    """Decides whether we may send to a URL a client gave us (a webhook)."""

    async def check(self, url: str) -> None:
        """Raise :class:`~mjcore.errors.InvalidInput` if the URL may not be called (a
        private, loopback or link-local address after resolution; plain http), unless the
        operator allows it."""


class WebhookSender(Protocol):
    async def send(self, url: str, webhook_id: str, payload: str) -> Outcome:
        """One signed attempt (no redirects followed, its own deadline)."""


class ImageMirror(Protocol):
    """Copies a provider's (expiring) image into our image store."""

    def trusted(self, url: str) -> bool:
        """May this URL be kept and shown to a client at all (scheme and host allowed)?"""

    async def mirror(self, url: str) -> str | None:
        """Our absolute URL of the copy, or None if the image could not be fetched."""


@frozen
class StoredImage:
    """A kept image as the server streams it: the file holding it and its type (never its
    bytes, so serving a large image does not load it whole)."""

    path: Path
    content_type: str


class ImageStore(Protocol):
    """Where generated images are kept and served from."""

    async def save(self, data: bytes, content_type: str) -> str:
        """Keep the image under an unguessable name; return the absolute URL it is served at."""

    async def load(self, name: str) -> StoredImage | None:
        """Where the image named ``name`` is, or None (also for a name this store never
        gives out, so a path cannot be smuggled in)."""


@frozen
class ImageRequest:
    prompt: str
    aspect_ratio: str
    output_format: str  # "png" or "jpeg"
    seed: int | None = None


@frozen
class GeneratedImage:
    data: bytes
    content_type: str
    request_id: str
    seed: int | None = None


class ImageGenerator(Protocol):
    """A text-to-image provider (Fireworks). Raises :class:`~mjcore.errors.ProviderError`."""

    async def generate(self, request: ImageRequest) -> GeneratedImage: ...
