"""Settings from the environment: defaults, fallbacks, and one line per bad value."""

from __future__ import annotations

import pytest

from entrypoints.settings import Settings, SettingsError
from mjcore.pricing import Prices


def test_no_settings_at_all_means_sqlite_in_the_current_directory() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///./mjcore.db"
    assert (settings.mj_concurrency, settings.mj_queue_size, settings.mj_timeout_s) == (3, 10, 300)
    assert settings.jwt_ttl_s == 7 * 24 * 3600
    assert settings.fireworks_timeout_s == 120
    assert settings.prices == Prices()


def test_values_are_read_from_the_prefixed_names() -> None:
    settings = Settings.from_env(
        {
            "MJCORE_DATABASE_URL": "postgresql://u:p@db:5432/mj",
            "MJCORE_MJ_CONCURRENCY": "5",
            "MJCORE_PUBLIC_URL": "https://img.example.com/",
            "MJCORE_PRICES": "imagine=2,default=3",
            "MJCORE_BANNED_WORDS": "Blood, gore ,big  nose",
            "MJCORE_FIREWORKS_TIMEOUT_S": "2.5",
        }
    )
    assert settings.database_url == "postgresql://u:p@db:5432/mj"
    assert settings.mj_concurrency == 5
    assert settings.public_url == "https://img.example.com"
    assert settings.prices == Prices({"imagine": 2}, default=3)
    assert settings.banned_words == ("blood", "gore", "big  nose")
    assert settings.fireworks_timeout_s == 2.5


def test_the_shipped_banned_list_is_on_unless_turned_off() -> None:
    shipped = Settings.from_env({"MJCORE_BANNED_WORDS": "gore"})
    off = Settings.from_env({"MJCORE_BANNED_WORDS": "gore", "MJCORE_BANNED_WORDS_DEFAULT": "0"})
    assert "nude" in shipped.banned and shipped.banned[-1] == "gore"
    assert off.banned == ("gore",)
    with pytest.raises(SettingsError, match="MJCORE_BANNED_WORDS_DEFAULT"):
        Settings.from_env({"MJCORE_BANNED_WORDS_DEFAULT": "maybe"})


def test_yokonsan_names_are_fallbacks_only() -> None:
    env = {"USER_TOKEN": "tok", "GUILD_ID": "1", "CHANNEL_ID": "2", "DRAW_VERSION": "3"}
    env |= {"CONCUR_SIZE": "4", "WAIT_SIZE": "5"}
    settings = Settings.from_env(env)
    assert (settings.discord_user_token, settings.discord_guild_id) == ("tok", "1")
    assert (settings.discord_channel_id, settings.mj_imagine_version) == ("2", "3")
    assert (settings.mj_concurrency, settings.mj_queue_size) == (4, 5)
    assert Settings.from_env(env | {"MJCORE_MJ_CONCURRENCY": "9"}).mj_concurrency == 9


def test_prices_as_json() -> None:
    settings = Settings.from_env({"MJCORE_PRICES": '{"imagine": 4, "default": 0}'})
    assert settings.prices.of("imagine") == 4 and settings.prices.of("upscale") == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MJCORE_DATABASE_URL", "oracle://x/y"),
        ("MJCORE_DATABASE_URL", "sqlite://relative.db"),
        ("MJCORE_DATABASE_URL", "mysql://root@localhost"),
        ("MJCORE_MJ_CONCURRENCY", "zero"),
        ("MJCORE_MJ_CONCURRENCY", "0"),
        ("MJCORE_MJ_QUEUE_SIZE", "-1"),
        ("MJCORE_MJ_TIMEOUT_S", "1.5"),
        ("MJCORE_JWT_TTL_S", "10"),
        ("MJCORE_PUBLIC_URL", "localhost:8086"),
        ("MJCORE_DISCORD_API_URL", "ftp://discord"),
        ("MJCORE_DISCORD_GUILD_ID", "abc"),
        ("MJCORE_FIREWORKS_TIMEOUT_S", "never"),
        ("MJCORE_PRICES", "imagine=-1"),
        ("MJCORE_PRICES", "imagine"),
        ("MJCORE_PRICES", "[1, 2]"),
        ("MJCORE_LOG_LEVEL", "LOUD"),
        ("MJCORE_LOG_FORMAT", "xml"),
        ("CONCUR_SIZE", "many"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    [line] = str(caught.value).splitlines()
    assert line.startswith(f"{name}: ")
    assert repr(value) in line


def test_every_bad_value_is_reported_and_secrets_are_not_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MJCORE_JWT_SECRET": "short-secret", "MJCORE_MJ_CONCURRENCY": "x"})
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["MJCORE_JWT_SECRET", "MJCORE_MJ_CONCURRENCY"]
    assert "short-secret" not in str(caught.value)


def test_log_format_and_metrics_token() -> None:
    default = Settings.from_env({})
    chosen = Settings.from_env({"MJCORE_LOG_FORMAT": "Console", "MJCORE_METRICS_TOKEN": "t0k"})
    assert (default.log_format, default.metrics_token) == ("auto", None)
    assert (chosen.log_format, chosen.metrics_token) == ("console", "t0k")
    assert "t0k" not in repr(chosen)


def test_secrets_are_not_in_the_repr() -> None:
    settings = Settings.from_env(
        {"MJCORE_JWT_SECRET": "s" * 32, "MJCORE_ADMIN_PASSWORD": "hunter2-hunter2"}
    )
    assert "s" * 32 not in repr(settings) and "hunter2" not in repr(settings)
