"""Settings from the environment (``MJCORE_`` prefix); a bad value is one clear line."""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from attrs import field, frozen

from mjcore.discord_accounts import ACCOUNT_CONCURRENCY, ACCOUNT_QUEUE_SIZE
from mjcore.errors import InvalidAmount
from mjcore.limits import Whole, parse_whole
from mjcore.midjourney import COSTLY_PARAMETERS
from mjcore.moderation import default_banned_words
from mjcore.pricing import DEFAULT_PRICE, Prices

PREFIX = "MJCORE_"
STORE_SCHEMES = ("memory", "sqlite", "mysql", "mariadb", "postgres", "postgresql")
# the yokonsan/midjourney-api names, accepted when the MJCORE_ name is not set
FALLBACKS = {
    "DISCORD_USER_TOKEN": "USER_TOKEN",
    "DISCORD_GUILD_ID": "GUILD_ID",
    "DISCORD_CHANNEL_ID": "CHANNEL_ID",
    "DISCORD_BOT_TOKEN": "BOT_TOKEN",
    "MJ_IMAGINE_VERSION": "DRAW_VERSION",
    "MJ_CONCURRENCY": "CONCUR_SIZE",
    "MJ_QUEUE_SIZE": "WAIT_SIZE",
}

T = TypeVar("T")
ADMIN_PASSWORD_MIN = 12
_RATE = re.compile(r"(\d+)\s*(?:/|per)\s*(\d*)\s*(second|minute|hour|day)s?", re.IGNORECASE)
_UNIT_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class SettingsError(ValueError):
    """One or more settings are invalid; each line of the message names one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@frozen
class Rate:
    """At most ``count`` requests in any ``seconds``: ``10/minute``, ``30 per 5 minutes``."""

    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


@frozen
class Settings:
    """Everything the service can be told. Defaults give a working SQLite server."""

    database_url: str = "sqlite:///./mjcore.db"
    db_pool_size: int = 10
    public_url: str = "http://localhost:8086"
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_ttl_s: int = 7 * 24 * 3600
    admin_username: str | None = None
    admin_password: str | None = field(default=None, repr=False)
    callback_secret: str | None = field(default=None, repr=False)
    callback_url: str | None = None  # every task event goes here too (yokonsan's CALLBACK_URL)
    webhook_secret: str | None = field(default=None, repr=False)  # whsec_…; else kept in the db
    webhook_allow_private: bool = False
    webhook_attempts: int = 10
    webhook_first_retry_s: float = 10.0
    webhook_last_retry_s: float = 86400.0
    webhook_timeout_s: float = 10.0
    webhook_interval_s: float = 1.0
    idempotency_ttl_s: int = 24 * 3600
    image_dir: str = "./images"
    mirror_hosts: tuple[str, ...] = ("cdn.discordapp.com", "media.discordapp.net")
    mirror_max_bytes: int = 50 * 1024 * 1024
    mirror_timeout_s: float = 30.0
    mirror_concurrency: int = 4
    max_upload_bytes: int = 10 * 1024 * 1024
    max_body_bytes: int = 1024 * 1024  # JSON bodies
    hash_concurrency: int = 2  # scrypt hashes at once, in worker threads
    rate_limit_storage: str = field(default="memory://", repr=False)  # may hold a password
    login_rate_per_address: Rate = Rate(30, 60)
    login_rate_per_name: Rate = Rate(10, 60)
    register_rate_per_address: Rate = Rate(10, 60)
    register_rate_per_name: Rate = Rate(10, 60)
    admin_failure_rate_per_address: Rate = Rate(10, 60)
    upload_rate_per_key: Rate = Rate(30, 60)  # /upload and /message, each
    max_connections: int = 1000
    keepalive_s: int = 5
    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    discord_api_url: str = "https://discord.com/api/v9"
    discord_user_token: str | None = field(default=None, repr=False)
    discord_bot_token: str | None = field(default=None, repr=False)  # our listener's
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    listener_lease_s: float = 20.0
    listener_deleted_grace_s: float = 5.0
    discord_guild_id: str | None = None
    discord_channel_id: str | None = None
    mj_application_id: str = "936929561302675456"
    mj_imagine_id: str = "938956540159881230"
    mj_imagine_version: str = "1237876415471554623"
    mj_describe_id: str = "1092492867185950852"
    mj_describe_version: str = "1237876415471554625"
    mj_session_id: str = field(factory=lambda: secrets.token_hex(16))
    discord_timeout_s: float = 30.0
    mj_sweep_interval_s: float = 5.0
    mj_health_check_s: int = 0  # 0: off; else how often accounts out of service are asked
    account_key: str | None = field(default=None, repr=False)  # seals Discord tokens
    mj_concurrency: int = 3
    mj_queue_size: int = 10
    mj_timeout_s: int = 300
    mj_max_duration_s: int = 3600
    banned_words: tuple[str, ...] = ()  # added to the shipped list
    banned_words_default: bool = True  # the shipped list (mjcore/banned_words.txt)
    mj_allowed_parameters: frozenset[str] = frozenset()  # costly ones: repeat, turbo
    fireworks_api_key: str | None = field(default=None, repr=False)
    fireworks_base_url: str = "https://api.fireworks.ai/inference/v1"
    fireworks_model: str = "flux-1-schnell-fp8"
    fireworks_timeout_s: float = 120.0
    prices: Prices = field(factory=Prices)
    log_level: str = "INFO"
    log_format: str = "auto"  # json, console, or auto: console on a terminal, else JSON
    metrics_token: str | None = field(default=None, repr=False)  # GET /metrics wants it
    demo: bool = False  # try-it mode: stand-in providers, seeded users (mjcore serve --demo)

    @property
    def banned(self) -> tuple[str, ...]:
        """Every banned word or phrase in force."""
        shipped = default_banned_words() if self.banned_words_default else ()
        return shipped + self.banned_words

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read ``MJCORE_*`` (and the yokonsan fallbacks); raise :class:`SettingsError`."""
        reader = _Reader(env)
        values: dict[str, Any] = {
            "database_url": reader.get("DATABASE_URL", _store_url),
            "db_pool_size": reader.get("DB_POOL_SIZE", _int_between(1, 1000)),
            "public_url": reader.get("PUBLIC_URL", _http_url),
            "jwt_secret": reader.get("JWT_SECRET", _secret),
            "jwt_ttl_s": reader.get("JWT_TTL_S", _int_between(60, 10 * 365 * 24 * 3600)),
            "admin_username": reader.get("ADMIN_USERNAME", _text),
            "admin_password": reader.get("ADMIN_PASSWORD", _admin_password),
            "callback_secret": reader.get("CALLBACK_SECRET", _text),
            "callback_url": reader.get("CALLBACK_URL", _http_url),
            "webhook_secret": reader.get("WEBHOOK_SECRET", _webhook_secret),
            "webhook_allow_private": reader.get("WEBHOOK_ALLOW_PRIVATE", _flag),
            "demo": reader.get("DEMO", _flag),
            "webhook_attempts": reader.get("WEBHOOK_ATTEMPTS", _int_between(1, 30)),
            "webhook_first_retry_s": reader.get("WEBHOOK_FIRST_RETRY_S", _seconds),
            "webhook_last_retry_s": reader.get("WEBHOOK_LAST_RETRY_S", _long_seconds),
            "webhook_timeout_s": reader.get("WEBHOOK_TIMEOUT_S", _seconds),
            "webhook_interval_s": reader.get("WEBHOOK_INTERVAL_S", _seconds),
            "idempotency_ttl_s": reader.get("IDEMPOTENCY_TTL_S", _int_between(60, 30 * 86400)),
            "image_dir": reader.get("IMAGE_DIR", _text),
            "mirror_hosts": reader.get("MIRROR_HOSTS", _hosts),
            "mirror_max_bytes": reader.get("MIRROR_MAX_BYTES", _int_between(1, 1 << 30)),
            "mirror_timeout_s": reader.get("MIRROR_TIMEOUT_S", _seconds),
            "mirror_concurrency": reader.get("MIRROR_CONCURRENCY", _int_between(1, 100)),
            "max_upload_bytes": reader.get("MAX_UPLOAD_BYTES", _int_between(1, 1 << 30)),
            "max_body_bytes": reader.get("MAX_BODY_BYTES", _int_between(1024, 1 << 30)),
            "hash_concurrency": reader.get("HASH_CONCURRENCY", _int_between(1, 64)),
            "rate_limit_storage": reader.get("RATE_LIMIT_STORAGE", _rate_limit_storage),
            "login_rate_per_address": reader.get("LOGIN_RATE_PER_ADDRESS", _rate),
            "login_rate_per_name": reader.get("LOGIN_RATE_PER_NAME", _rate),
            "register_rate_per_address": reader.get("REGISTER_RATE_PER_ADDRESS", _rate),
            "register_rate_per_name": reader.get("REGISTER_RATE_PER_NAME", _rate),
            "admin_failure_rate_per_address": reader.get("ADMIN_FAILURE_RATE_PER_ADDRESS", _rate),
            "upload_rate_per_key": reader.get("UPLOAD_RATE_PER_KEY", _rate),
            "max_connections": reader.get("MAX_CONNECTIONS", _int_between(1, 1_000_000)),
            "keepalive_s": reader.get("KEEPALIVE_S", _int_between(1, 3600)),
            "header_timeout_s": reader.get("HEADER_TIMEOUT_S", _seconds),
            "max_header_bytes": reader.get("MAX_HEADER_BYTES", _int_between(1024, 1 << 24)),
            "discord_api_url": reader.get("DISCORD_API_URL", _http_url),
            "discord_user_token": reader.get("DISCORD_USER_TOKEN", _text),
            "discord_bot_token": reader.get("DISCORD_BOT_TOKEN", _text),
            "discord_gateway_url": reader.get("DISCORD_GATEWAY_URL", _ws_url),
            "listener_lease_s": reader.get("LISTENER_LEASE_S", _seconds),
            "listener_deleted_grace_s": reader.get("LISTENER_DELETED_GRACE_S", _seconds),
            "discord_guild_id": reader.get("DISCORD_GUILD_ID", _snowflake),
            "discord_channel_id": reader.get("DISCORD_CHANNEL_ID", _snowflake),
            "mj_application_id": reader.get("MJ_APPLICATION_ID", _snowflake),
            "mj_imagine_id": reader.get("MJ_IMAGINE_ID", _snowflake),
            "mj_imagine_version": reader.get("MJ_IMAGINE_VERSION", _snowflake),
            "mj_describe_id": reader.get("MJ_DESCRIBE_ID", _snowflake),
            "mj_describe_version": reader.get("MJ_DESCRIBE_VERSION", _snowflake),
            "mj_session_id": reader.get("MJ_SESSION_ID", _text),
            "discord_timeout_s": reader.get("DISCORD_TIMEOUT_S", _seconds),
            "mj_sweep_interval_s": reader.get("MJ_SWEEP_INTERVAL_S", _seconds),
            "mj_health_check_s": reader.get("MJ_HEALTH_CHECK_S", _int_between(0, 86400)),
            "account_key": reader.get("ACCOUNT_KEY", _secret),
            "mj_concurrency": reader.get("MJ_CONCURRENCY", _within(ACCOUNT_CONCURRENCY)),
            "mj_queue_size": reader.get("MJ_QUEUE_SIZE", _within(ACCOUNT_QUEUE_SIZE)),
            "mj_timeout_s": reader.get("MJ_TIMEOUT_S", _int_between(1, 7 * 24 * 3600)),
            "mj_max_duration_s": reader.get("MJ_MAX_DURATION_S", _int_between(1, 7 * 24 * 3600)),
            "banned_words": reader.get("BANNED_WORDS", _word_list),
            "banned_words_default": reader.get("BANNED_WORDS_DEFAULT", _flag),
            "mj_allowed_parameters": reader.get("MJ_ALLOWED_PARAMETERS", _costly),
            "fireworks_api_key": reader.get("FIREWORKS_API_KEY", _text),
            "fireworks_base_url": reader.get("FIREWORKS_BASE_URL", _http_url),
            "fireworks_model": reader.get("FIREWORKS_MODEL", _text),
            "fireworks_timeout_s": reader.get("FIREWORKS_TIMEOUT_S", _seconds),
            "prices": reader.get("PRICES", _prices),
            "log_level": reader.get("LOG_LEVEL", _log_level),
            "log_format": reader.get("LOG_FORMAT", _log_format),
            "metrics_token": reader.get("METRICS_TOKEN", _text),
        }
        if reader.problems:
            raise SettingsError(reader.problems)
        return cls(**{name: value for name, value in values.items() if value is not None})


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, parse: Callable[[str], T]) -> T | None:
        key = PREFIX + name
        raw = self.env.get(key)
        if raw is None and name in FALLBACKS:
            key = FALLBACKS[name]
            raw = self.env.get(key)
        if raw is None or raw.strip() == "":
            return None
        try:
            return parse(raw.strip())
        except ValueError as exc:
            shown = "(hidden)" if _is_secret(name) else repr(raw)
            self.problems.append(f"{key}: {exc} (got {shown})")
            return None


def _is_secret(name: str) -> bool:
    return any(word in name for word in ("SECRET", "PASSWORD", "TOKEN", "KEY", "STORAGE"))


def _text(raw: str) -> str:
    return raw


def _flag(raw: str) -> bool:
    value = raw.lower()
    if value not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ValueError("must be 1 or 0 (true/false, yes/no, on/off)")
    return value in ("1", "true", "yes", "on")


def _secret(raw: str) -> str:
    if len(raw.encode()) < 32:  # RFC 7518: an HS256 key is at least 256 bits
        raise ValueError("must be at least 32 bytes")
    return raw


def _admin_password(raw: str) -> str:
    if len(raw) < ADMIN_PASSWORD_MIN:  # the admin API issues credits: no guessable password
        raise ValueError(f"must be at least {ADMIN_PASSWORD_MIN} characters")
    return raw


def _rate(raw: str) -> Rate:
    match = _RATE.fullmatch(raw)
    count = int(match.group(1)) if match else 0
    if match is None or not 1 <= count <= 1_000_000:
        raise ValueError(
            "must be a number of requests per second, minute, hour or day"
            " (10/minute, 30 per 5 minutes), from 1 to 1000000"
        )
    multiple = int(match.group(2) or 1)
    seconds = multiple * _UNIT_S[match.group(3).lower()]
    if not 1 <= seconds <= 7 * 86400:
        raise ValueError("must span at most 7 days")
    return Rate(count, seconds)


def _rate_limit_storage(raw: str) -> str:
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in ("memory", "redis", "rediss") or (
        scheme != "memory" and not urlsplit(raw).hostname
    ):
        raise ValueError(
            "must be memory:// or redis://[:password@]host:port[/db] (rediss:// for TLS)"
        )
    return raw


def _within(rule: Whole) -> Callable[[str], int]:
    """A whole number the core's ``rule`` allows (a pool account's limits are the same)."""
    return _int_between(rule.low, rule.high)


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            return parse_whole(raw, low, high, "it")
        except InvalidAmount:
            raise ValueError(f"must be a whole number from {low} to {high}") from None

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds above 0") from None
    if not 0 < value <= 3600:
        raise ValueError("must be a number of seconds above 0 and at most 3600")
    return value


def _snowflake(raw: str) -> str:
    if not raw.isdigit():
        raise ValueError("must be a Discord id (digits only)")
    return raw


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return raw.rstrip("/")


def _hosts(raw: str) -> tuple[str, ...]:
    """Host names (https) or whole origins (``http://127.0.0.1:8080``), comma-separated."""
    hosts = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if "://" in item:
            parts = urlsplit(item)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or parts.path not in ("", "/")
            ):
                raise ValueError(
                    "each entry must be a host name or an origin like https://host:port"
                )
            item = f"{parts.scheme}://{parts.netloc}".lower()
        elif not all(c.isalnum() or c in ".-" for c in item):
            raise ValueError("each entry must be a host name or an origin like https://host:port")
        hosts.append(item.lower())
    return tuple(hosts)


def _webhook_secret(raw: str) -> str:
    """Standard Webhooks' form: whsec_ and base64 of 24+ random bytes."""
    try:
        key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise ValueError(
            "must be whsec_ followed by base64 (mjcore webhooks secret makes one)"
        ) from None
    if len(key) < 24:
        raise ValueError("must hold at least 24 random bytes")
    return raw


def _long_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 1 <= value <= 7 * 86400:
        raise ValueError("must be a number of seconds from 1 to 604800")
    return value


def _ws_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError("must be a ws:// or wss:// URL")
    return raw


def _store_url(raw: str) -> str:
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in STORE_SCHEMES:
        raise ValueError(
            "must be sqlite:///path, mysql://user:pass@host:port/db,"
            " postgresql://user:pass@host:port/db or memory://"
        )
    if scheme == "sqlite" and not raw.startswith("sqlite:///"):
        raise ValueError("must be sqlite:///relative/path.db or sqlite:////absolute/path.db")
    if scheme not in ("memory", "sqlite") and not urlsplit(raw).path.strip("/"):
        raise ValueError("must name a database, e.g. mysql://root@127.0.0.1:3306/test")
    return raw


def _costly(raw: str) -> frozenset[str]:
    names = frozenset(_word_list(raw))
    unknown = names - set(COSTLY_PARAMETERS)
    if unknown:
        raise ValueError(f"must name only {', '.join(COSTLY_PARAMETERS)}")
    return names


def _word_list(raw: str) -> tuple[str, ...]:
    return tuple(word.strip().lower() for word in raw.split(",") if word.strip())


def _prices(raw: str) -> Prices:
    """``imagine=2,upscale=1`` or a JSON object; ``default`` sets the price of the rest."""
    try:
        table = json.loads(raw) if raw.startswith("{") else dict(_pairs(raw))
    except (json.JSONDecodeError, TypeError):
        raise ValueError(
            "must be action=price pairs (imagine=2,default=1) or a JSON object"
        ) from None
    if not isinstance(table, dict):
        raise ValueError("must be a JSON object of action to price")
    default = table.pop("default", DEFAULT_PRICE)
    try:
        return Prices(table, default)
    except InvalidAmount as exc:
        raise ValueError(str(exc)) from None


def _pairs(raw: str) -> list[tuple[str, int]]:
    pairs = []
    for item in raw.split(","):
        action, sep, price = item.partition("=")
        if not sep or not action.strip():
            raise TypeError(item)
        try:
            pairs.append((action.strip(), int(price)))
        except ValueError:
            raise TypeError(item) from None
    return pairs


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _log_format(raw: str) -> str:
    if raw.lower() not in ("auto", "json", "console"):
        raise ValueError("must be json, console or auto")
    return raw.lower()
