"""Settings of the edge defences (issue #9): defaults, parsing, one line per bad value."""

from __future__ import annotations

import pytest

from entrypoints import cli
from entrypoints.settings import Rate, Settings, SettingsError


def test_edge_defaults_are_the_documented_ones() -> None:
    settings = Settings.from_env({})
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.hash_concurrency == 2
    assert settings.rate_limit_storage == "memory://"
    assert settings.login_rate_per_address == Rate(30, 60)
    assert settings.login_rate_per_name == Rate(10, 60)
    assert settings.register_rate_per_address == Rate(10, 60)
    assert settings.register_rate_per_name == Rate(10, 60)
    assert settings.admin_failure_rate_per_address == Rate(10, 60)
    assert settings.upload_rate_per_key == Rate(30, 60)
    assert (settings.max_connections, settings.keepalive_s) == (1000, 5)
    assert (settings.header_timeout_s, settings.max_header_bytes) == (10.0, 64 * 1024)


@pytest.mark.parametrize(
    ("raw", "rate"),
    [
        ("10/minute", Rate(10, 60)),
        ("30 per 5 minutes", Rate(30, 300)),
        ("1/SECOND", Rate(1, 1)),
        ("100 / 2 hours", Rate(100, 7200)),
        ("1000/day", Rate(1000, 86400)),
    ],
)
def test_rates_are_read_in_the_limits_notation(raw: str, rate: Rate) -> None:
    assert Settings.from_env({"MJCORE_LOGIN_RATE_PER_NAME": raw}).login_rate_per_name == rate


@pytest.mark.parametrize("raw", ["lots", "0/minute", "10/fortnight", "10", "-1/second", "5/8 days"])
def test_a_bad_rate_is_one_line_naming_the_setting(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MJCORE_UPLOAD_RATE_PER_KEY": raw})
    [line] = caught.value.problems
    assert line.startswith("MJCORE_UPLOAD_RATE_PER_KEY: must ")


def test_rate_limit_storage_is_memory_or_redis_and_never_echoed() -> None:
    url = "redis://:s3cret@127.0.0.1:6379/2"
    assert Settings.from_env({"MJCORE_RATE_LIMIT_STORAGE": url}).rate_limit_storage == url
    assert "s3cret" not in repr(Settings.from_env({"MJCORE_RATE_LIMIT_STORAGE": url}))
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MJCORE_RATE_LIMIT_STORAGE": "memcached://:s3cret@host"})
    assert caught.value.problems[0].startswith("MJCORE_RATE_LIMIT_STORAGE: must be memory://")
    assert "s3cret" not in str(caught.value)


def test_finding_14_a_short_admin_password_is_a_settings_error() -> None:
    assert Settings.from_env({"MJCORE_ADMIN_PASSWORD": "x" * 12}).admin_password == "x" * 12
    for short in ("a", "hunter2", "x" * 11):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({"MJCORE_ADMIN_PASSWORD": short})
        assert caught.value.problems == [
            "MJCORE_ADMIN_PASSWORD: must be at least 12 characters (got (hidden))"
        ]


def test_finding_14_mjcore_serve_refuses_to_start_with_admin_password_a(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MJCORE_ADMIN_USERNAME", "admin")
    monkeypatch.setenv("MJCORE_ADMIN_PASSWORD", "a")

    status = cli.main(["serve", "--port", "1"])  # never gets as far as binding

    assert status == 1
    assert "MJCORE_ADMIN_PASSWORD: must be at least 12 characters" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("MJCORE_MAX_BODY_BYTES", "12"),
        ("MJCORE_HASH_CONCURRENCY", "0"),
        ("MJCORE_MAX_CONNECTIONS", "none"),
        ("MJCORE_KEEPALIVE_S", "0"),
        ("MJCORE_HEADER_TIMEOUT_S", "-1"),
        ("MJCORE_MAX_HEADER_BYTES", "10"),
    ],
)
def test_bad_edge_limits_stop_start_up(name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: raw})
    [line] = caught.value.problems
    assert line.startswith(f"{name}: must ") and line.endswith(f"(got {raw!r})")
