"""What ``mjcore serve`` says at start-up."""

from __future__ import annotations

from entrypoints.server import startup_fields
from entrypoints.settings import Settings


def test_the_startup_event_names_store_providers_admin_and_workers_without_secrets() -> None:
    settings = Settings(
        database_url="postgresql://mjcore:s3cret-pw@db:5432/mjcore",
        discord_user_token="user-token",
        discord_guild_id="1",
        discord_channel_id="2",
        discord_bot_token="bot-token",
        fireworks_api_key="fw-key",
        admin_username="admin",
        admin_password="admin-password",
    )

    fields = startup_fields(settings, "0.0.0.0", 8086, 4)

    assert fields | {"version": "x"} == {
        "version": "x",
        "url": "http://0.0.0.0:8086",
        "store": "postgresql://mjcore:***@db:5432/mjcore",
        "midjourney": "on",
        "fireworks": "on",
        "listener": "on",
        "admin": "on",
        "workers": 4,
    }
    for secret in ("s3cret-pw", "user-token", "bot-token", "fw-key", "admin-password"):
        assert secret not in str(fields)
