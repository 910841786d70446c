"""The one composition root: settings in, wired services out. Nothing runs at import."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from attrs import define, field, frozen

from mjcore.clock import Clock, system_clock
from mjcore.discord_accounts import DiscordAccount
from mjcore.passwords import Hasher
from mjcore.ports import Store
from mjcore.pricing import Prices

from .settings import Settings

if TYPE_CHECKING:
    import httpx

    from adapters.discord import DiscordConfig
    from adapters.fireworks import FireworksConfig
    from mjcore.ports import ImageGenerator, ImageMirror, ImageStore, MidjourneyProvider
    from mjcore.services.accounts import AccountService
    from mjcore.services.console import AdminConsole
    from mjcore.services.idempotency import Keys
    from mjcore.services.images import ImageService
    from mjcore.services.midjourney import MidjourneyService
    from mjcore.services.reports import AdminService
    from mjcore.services.webhooks import WebhookService

    from .ratelimit import RateLimits
    from .tokens import Tokens


class StoreUnavailable(Exception):
    """The configured database could not be opened or migrated."""


DRIVERS = {  # URL scheme → (what it is, its driver module, the extra that installs it)
    "mysql": ("MySQL/MariaDB", "aiomysql", "mysql"),
    "mariadb": ("MySQL/MariaDB", "aiomysql", "mysql"),
    "postgres": ("PostgreSQL", "asyncpg", "postgres"),
    "postgresql": ("PostgreSQL", "asyncpg", "postgres"),
}


def check_driver(url: str) -> None:
    """Raise :class:`StoreUnavailable` naming the extra to install if the URL's driver is
    missing (drivers are imported only when their URL is used)."""
    import importlib

    scheme = url.split("://", 1)[0]
    if scheme not in DRIVERS:
        return
    what, module, extra = DRIVERS[scheme]
    try:
        importlib.import_module(module)
    except ImportError:
        raise StoreUnavailable(
            f"{what} needs its driver {module}, which is not installed:"
            f" pip install 'mjcore[{extra}]'"
        ) from None


def sqlite_path(url: str) -> Path | None:
    """The absolute path of a ``sqlite:///`` URL's file (None for other URLs)."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///")).absolute()


async def open_store(
    url: str, pool_size: int = 10, *, create: bool = True, account_key: str | None = None
) -> Store:
    """Pick the store adapter by URL scheme; drivers are imported only when chosen.

    With ``create=False`` a SQLite file that does not exist is an error, not a new
    empty database. ``account_key`` seals Discord tokens (else a key the database keeps).
    """
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        from adapters.memory import MemoryStore

        return MemoryStore()
    check_driver(url)
    from adapters.sql import SqlStore

    if scheme == "sqlite":
        from adapters.sql.sqlite import open_sqlite

        path = sqlite_path(url)
        if not create and path is not None and not path.is_file():
            raise StoreUnavailable(
                f"no database at {path} (MJCORE_DATABASE_URL={url}); set"
                " MJCORE_DATABASE_URL, or create it with `mjcore migrate`"
            )
        return SqlStore(await open_sqlite(url, pool_size), account_key)
    if scheme in ("mysql", "mariadb"):
        from adapters.sql.mysql import open_mysql

        return SqlStore(await open_mysql(url, pool_size), account_key)
    if scheme in ("postgres", "postgresql"):
        from adapters.sql.postgres import open_postgres

        return SqlStore(
            await open_postgres(url.replace("postgres://", "postgresql://", 1), pool_size)
        )
    raise ValueError(f"no store for {scheme!r} URLs")


class DemoRefused(Exception):
    """Demo mode was asked for while real provider credentials are configured."""


DEMO_USER = ("demo", "demo-password", 100)  # name, password, credits: seeded in demo mode


def check_demo(settings: Settings) -> None:
    """Refuse demo mode next to real credentials: a demo must never spend real money."""
    if not settings.demo:
        return
    real = [
        name
        for name, value in (
            ("MJCORE_DISCORD_USER_TOKEN", settings.discord_user_token),
            ("MJCORE_DISCORD_BOT_TOKEN", settings.discord_bot_token),
            ("MJCORE_FIREWORKS_API_KEY", settings.fireworks_api_key),
        )
        if value
    ]
    if real:
        raise DemoRefused(
            f"demo mode uses stand-in providers only; unset {', '.join(real)} to run it"
        )


async def seed_demo(services: AppServices) -> None:
    """The demo user (with credits) and the stand-in Discord account, if not there yet."""
    from adapters.demo import DEMO_ACCOUNT
    from mjcore.errors import UserNameTaken
    from mjcore.services.accounts import create_account, set_password

    core = services.core
    await services.midjourney.ensure_account(DEMO_ACCOUNT)
    name, password, credits = DEMO_USER
    try:
        await create_account(core.store, core.clock, name, credits)
    except UserNameTaken:
        return  # seeded before (or by another worker just now)
    await set_password(core.store, core.clock, core.hasher, name, password)


@define
class Services:
    """What the entrypoints use: the store, the clock, the prices and the settings."""

    settings: Settings
    store: Store
    clock: Clock = field(default=system_clock)
    applied_migrations: tuple[int, ...] = ()
    hasher: Hasher = field(factory=Hasher)  # bounds scrypt across the process

    @property
    def prices(self) -> Prices:
        return self.settings.prices

    async def aclose(self) -> None:
        await self.store.close()


async def bootstrap(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock = system_clock,
    migrate: bool = True,
    readonly: bool = False,
) -> Services:
    """Open the store named by the settings (or use ``store``) and bring its schema up.

    ``readonly``: for commands that only look. Nothing is created or migrated: a missing
    SQLite file or a schema that is not current is a :class:`StoreUnavailable`.
    """
    where = redacted_url(settings.database_url)
    if store is None:
        try:
            store = await open_store(
                settings.database_url,
                settings.db_pool_size,
                create=not readonly,
                account_key=settings.account_key,
            )
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"cannot open the database {where}: {exc}") from exc
    try:
        if readonly:
            await _check_current(store, where)
            applied: tuple[int, ...] = ()
        else:
            applied = tuple(await store.migrate()) if migrate else ()
    except BaseException as exc:
        await store.close()
        if isinstance(exc, StoreUnavailable):
            raise
        if isinstance(exc, Exception):
            raise StoreUnavailable(f"cannot migrate the database {where}: {exc}") from exc
        raise
    return Services(settings, store, clock, applied, Hasher(settings.hash_concurrency))


class Listener(Protocol):
    """Something that hears the provider and hands its events to the core."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


def gateway_listener(services: AppServices, channel_id: str, bot_token: str) -> Listener:
    """Our Discord listener for one channel of the pool (discord.py over the gateway)."""
    from adapters.discord_gateway import GatewayConfig, GatewayListener, point_discord_py_at

    settings = services.core.settings
    point_discord_py_at(settings.discord_api_url, settings.discord_gateway_url)
    config = GatewayConfig(
        bot_token=bot_token,
        channel_id=channel_id,
        midjourney_id=settings.mj_application_id,
        deleted_grace_s=settings.listener_deleted_grace_s,
    )
    return GatewayListener(config, services.midjourney.handle)


async def _check_current(store: Store, where: str) -> None:
    try:
        pending = list(await store.pending_migrations())
    except Exception as exc:
        raise StoreUnavailable(f"cannot read the database {where}: {exc}") from exc
    if pending:
        raise StoreUnavailable(
            f"the database {where} is not at this version's schema (migrations {pending} are"
            " not applied): run `mjcore migrate`"
        )


def version() -> str:
    """The installed mjcore's version."""
    from importlib import metadata

    try:
        return metadata.version("mjcore")
    except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown"


def redacted_url(url: str) -> str:
    """The database URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


@define
class AppServices:
    """What the web app uses: one service per surface, over :class:`Services`."""

    core: Services
    clients: tuple[httpx.AsyncClient, ...]
    image_store: ImageStore
    accounts: AccountService
    midjourney: MidjourneyService
    images: ImageService
    admin: AdminService
    tokens: Tokens
    providers: Providers
    limits: RateLimits
    keys: Keys
    webhooks: WebhookService
    console: AdminConsole  # the admin pages
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()  # e.g. demo jobs still playing

    async def aclose(self) -> None:
        try:
            for close in self.closers:
                await close()
            for client in self.clients:
                await client.aclose()
            await self.limits.aclose()
        finally:
            await self.core.aclose()


@frozen
class Providers:
    """Which providers the settings make usable (``/readyz``, the start-up line)."""

    midjourney: bool  # a Discord account: from the settings, or in the pool
    fireworks: bool  # a Fireworks API key given
    listener: bool  # our Discord listener runs in ``serve`` (a bot token for a channel)


def discord_config(settings: Settings) -> DiscordConfig:
    from adapters.discord import DiscordConfig

    return DiscordConfig(
        api_url=settings.discord_api_url,
        application_id=settings.mj_application_id,
        imagine_id=settings.mj_imagine_id,
        imagine_version=settings.mj_imagine_version,
        describe_id=settings.mj_describe_id,
        describe_version=settings.mj_describe_version,
        session_id=settings.mj_session_id,
    )


def fireworks_config(settings: Settings) -> FireworksConfig:
    from adapters.fireworks import FireworksConfig

    return FireworksConfig(
        api_key=settings.fireworks_api_key,
        base_url=settings.fireworks_base_url,
        model=settings.fireworks_model,
        timeout_s=settings.fireworks_timeout_s,
    )


def settings_account(settings: Settings) -> DiscordAccount | None:
    """The pool's ``default`` account, if the ``MJCORE_DISCORD_*`` settings describe one."""
    from mjcore.discord_accounts import DEFAULT_ACCOUNT, Secret

    token, guild, channel = (
        settings.discord_user_token,
        settings.discord_guild_id,
        settings.discord_channel_id,
    )
    if not (token and guild and channel):
        return None
    return DiscordAccount(
        DEFAULT_ACCOUNT,
        guild,
        channel,
        Secret(token),
        concurrency=settings.mj_concurrency,
        queue_size=settings.mj_queue_size,
    )


def providers(settings: Settings, pool: Sequence[DiscordAccount] = ()) -> Providers:
    """What the settings (and, once the database is open, the pool) make usable."""
    if settings.demo:  # the stand-ins: both providers, no listener
        return Providers(midjourney=True, fireworks=True, listener=False)
    bot = settings.discord_bot_token
    return Providers(
        midjourney=settings_account(settings) is not None or bool(pool),
        fireworks=fireworks_config(settings).configured,
        listener=bool(bot and settings.discord_channel_id)
        or any(a.bot_token is not None or bot for a in pool),
    )


async def bootstrap_app(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock = system_clock,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AppServices:
    """Everything the web app needs. ``transport`` replaces the network (tests)."""
    import secrets

    import httpx

    from adapters.discord import DiscordMidjourney
    from adapters.fireworks import FireworksImages
    from adapters.images import HttpImageMirror, LocalImageStore, MirrorPolicy
    from adapters.webhooks import HttpWebhookSender, Targets
    from mjcore.services.accounts import AccountService, kept_secret
    from mjcore.services.console import AdminConsole
    from mjcore.services.idempotency import Keys
    from mjcore.services.images import ImageService
    from mjcore.services.jobs import Extras
    from mjcore.services.midjourney import MidjourneyService, QueueLimits
    from mjcore.services.reports import AdminService
    from mjcore.services.webhooks import WebhookService
    from mjcore.webhooks import RetryPolicy, new_secret, secret_bytes

    from .callbacks import render
    from .ratelimit import open_rate_limits
    from .tokens import Tokens

    check_demo(settings)
    limits = await open_rate_limits(settings)
    try:
        core = await bootstrap(settings, store=store, clock=clock)
    except BaseException:
        await limits.aclose()
        raise
    jwt_secret = settings.jwt_secret or await kept_secret(
        core.store, "jwt_secret", secrets.token_urlsafe(48)
    )
    tls = httpx.create_ssl_context()  # one for every client: each costs ~40 ms to load
    http = httpx.AsyncClient(transport=transport, verify=tls, timeout=settings.discord_timeout_s)
    # Fireworks may take minutes: its own client, bounded by its own timeout
    slow = httpx.AsyncClient(transport=transport, verify=tls, timeout=settings.fireworks_timeout_s)
    # copies of result images: never on Discord's pool, a few at a time, one deadline each
    copies = httpx.AsyncClient(
        transport=transport,
        verify=tls,
        timeout=settings.mirror_timeout_s,
        limits=httpx.Limits(max_connections=settings.mirror_concurrency),
    )
    policy = MirrorPolicy(
        settings.mirror_hosts, settings.mirror_max_bytes, settings.mirror_timeout_s
    )
    # client callbacks: their own client too, never following a redirect
    hooks = httpx.AsyncClient(transport=transport, verify=tls, follow_redirects=False)
    targets = Targets(settings.webhook_allow_private)
    webhook_secret = settings.webhook_secret or await kept_secret(
        core.store, "webhook_secret", new_secret()
    )
    keys = Keys(core.store, clock, settings.idempotency_ttl_s)
    extras = Extras(keys, targets, settings.callback_url)
    images = LocalImageStore(Path(settings.image_dir), settings.public_url)
    fireworks_config_ = fireworks_config(settings)
    generator: ImageGenerator = FireworksImages(slow, fireworks_config_)
    discord: MidjourneyProvider = DiscordMidjourney(http, discord_config(settings))
    mirror: ImageMirror = HttpImageMirror(copies, images, policy)
    closers: list[Callable[[], Awaitable[None]]] = []
    demo = None
    if settings.demo:  # try-it mode: stand-ins behind the same ports
        from adapters.demo import DemoImages, DemoMidjourney, DemoMirror

        generator, mirror = DemoImages(), DemoMirror(settings.public_url)
        discord = demo = DemoMidjourney(images)
        closers.append(demo.aclose)
    midjourney = MidjourneyService(
        store=core.store,
        clock=clock,
        prices=settings.prices,
        provider=discord,
        mirror=mirror,
        limits=QueueLimits(
            settings.mj_concurrency,
            settings.mj_queue_size,
            settings.mj_timeout_s,
            settings.mj_max_duration_s,
        ),
        banned_words=settings.banned,
        allowed_parameters=settings.mj_allowed_parameters,
        extras=extras,
    )
    if demo is not None:
        demo.deliver_to(midjourney.handle)
    default = settings_account(settings)
    if default is not None:  # the settings' account joins the pool (or is kept up to date)
        await midjourney.ensure_account(default)
    pool = await midjourney.accounts()
    webhooks = WebhookService(
        core.store,
        clock,
        HttpWebhookSender(hooks, secret_bytes(webhook_secret), targets, settings.webhook_timeout_s),
        render,
        RetryPolicy(
            settings.webhook_attempts, settings.webhook_first_retry_s, settings.webhook_last_retry_s
        ),
        attempt_s=settings.webhook_timeout_s,
    )
    app = AppServices(
        core=core,
        clients=(http, slow, copies, hooks),
        image_store=images,
        accounts=AccountService(core.store, clock, core.hasher, extras),
        midjourney=midjourney,
        images=ImageService(
            core.store,
            clock,
            settings.prices,
            generator,
            images,
            available=settings.demo or fireworks_config_.configured,
            extras=extras,
        ),
        admin=AdminService(core.store, clock),
        tokens=Tokens(jwt_secret, settings.jwt_ttl_s, clock),
        providers=providers(settings, pool),
        limits=limits,
        keys=keys,
        webhooks=webhooks,
        console=AdminConsole(core.store, clock),
        closers=tuple(closers),
    )
    if settings.demo:
        await seed_demo(app)
    return app
