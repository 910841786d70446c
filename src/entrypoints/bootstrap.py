"""The one composition root: settings in, wired services out. Nothing runs at import."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from attrs import define, field

from mjcore.clock import Clock, system_clock
from mjcore.passwords import Hasher
from mjcore.ports import Store
from mjcore.pricing import Prices

from .settings import Settings

if TYPE_CHECKING:
    import httpx

    from mjcore.ports import ImageStore
    from mjcore.services.accounts import AccountService
    from mjcore.services.images import ImageService
    from mjcore.services.midjourney import MidjourneyService
    from mjcore.services.reports import AdminService

    from .ratelimit import RateLimits
    from .tokens import Tokens


class StoreUnavailable(Exception):
    """The configured database could not be opened or migrated."""


async def open_store(url: str, pool_size: int = 10) -> Store:
    """Pick the store adapter by URL scheme; drivers are imported only when chosen."""
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        from adapters.memory import MemoryStore

        return MemoryStore()
    from adapters.sql import SqlStore

    if scheme == "sqlite":
        from adapters.sql.sqlite import open_sqlite

        return SqlStore(await open_sqlite(url, pool_size))
    if scheme in ("mysql", "mariadb"):
        from adapters.sql.mysql import open_mysql

        return SqlStore(await open_mysql(url, pool_size))
    if scheme in ("postgres", "postgresql"):
        from adapters.sql.postgres import open_postgres

        return SqlStore(
            await open_postgres(url.replace("postgres://", "postgresql://", 1), pool_size)
        )
    raise ValueError(f"no store for {scheme!r} URLs")


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
) -> Services:
    """Open the store named by the settings (or use ``store``) and bring its schema up."""
    where = redacted_url(settings.database_url)
    if store is None:
        try:
            store = await open_store(settings.database_url, settings.db_pool_size)
        except Exception as exc:
            raise StoreUnavailable(f"cannot open the database {where}: {exc}") from exc
    try:
        applied = tuple(await store.migrate()) if migrate else ()
    except BaseException as exc:
        await store.close()
        if isinstance(exc, Exception):
            raise StoreUnavailable(f"cannot migrate the database {where}: {exc}") from exc
        raise
    return Services(settings, store, clock, applied, Hasher(settings.hash_concurrency))


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
    limits: RateLimits

    async def aclose(self) -> None:
        try:
            for client in self.clients:
                await client.aclose()
            await self.limits.aclose()
        finally:
            await self.core.aclose()


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

    from adapters.discord import DiscordConfig, DiscordMidjourney
    from adapters.fireworks import FireworksConfig, FireworksImages
    from adapters.images import HttpImageMirror, LocalImageStore
    from mjcore.services.accounts import AccountService, kept_secret
    from mjcore.services.images import ImageService
    from mjcore.services.midjourney import MidjourneyService, QueueLimits
    from mjcore.services.reports import AdminService

    from .ratelimit import open_rate_limits
    from .tokens import Tokens

    limits = await open_rate_limits(settings)
    try:
        core = await bootstrap(settings, store=store, clock=clock)
    except BaseException:
        await limits.aclose()
        raise
    jwt_secret = settings.jwt_secret or await kept_secret(
        core.store, "jwt_secret", secrets.token_urlsafe(48)
    )
    http = httpx.AsyncClient(transport=transport, timeout=settings.discord_timeout_s)
    # Fireworks may take minutes: its own client, bounded by its own timeout
    slow = httpx.AsyncClient(transport=transport, timeout=settings.fireworks_timeout_s)
    fireworks = FireworksImages(
        slow,
        FireworksConfig(
            api_key=settings.fireworks_api_key,
            base_url=settings.fireworks_base_url,
            model=settings.fireworks_model,
            timeout_s=settings.fireworks_timeout_s,
        ),
    )
    images = LocalImageStore(Path(settings.image_dir), settings.public_url)
    discord = DiscordMidjourney(
        http,
        DiscordConfig(
            api_url=settings.discord_api_url,
            user_token=settings.discord_user_token,
            guild_id=settings.discord_guild_id,
            channel_id=settings.discord_channel_id,
            application_id=settings.mj_application_id,
            imagine_id=settings.mj_imagine_id,
            imagine_version=settings.mj_imagine_version,
            describe_id=settings.mj_describe_id,
            describe_version=settings.mj_describe_version,
            session_id=settings.mj_session_id,
        ),
    )
    midjourney = MidjourneyService(
        store=core.store,
        clock=clock,
        prices=settings.prices,
        provider=discord,
        mirror=HttpImageMirror(http, images),
        limits=QueueLimits(
            settings.mj_concurrency,
            settings.mj_queue_size,
            settings.mj_timeout_s,
            settings.mj_max_duration_s,
        ),
        banned_words=settings.banned,
    )
    return AppServices(
        core=core,
        clients=(http, slow),
        image_store=images,
        accounts=AccountService(core.store, clock, core.hasher),
        midjourney=midjourney,
        images=ImageService(core.store, clock, settings.prices, fireworks, images),
        admin=AdminService(core.store, clock),
        tokens=Tokens(jwt_secret, settings.jwt_ttl_s, clock),
        limits=limits,
    )
