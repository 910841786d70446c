"""Fuzzing every surface from their OpenAPI document (schemathesis) against the real server.

Short by default; ``MJCORE_FUZZ_EXAMPLES=500`` gives the long form. Every response must be
documented (status, content type, shape); no 5xx but the 502/504 of a provider; and the
ledger must verify afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from entrypoints.app import document

from ..e2e import GENEROUS_RATE_LIMITS, new_user
from ..fakes.discord import FakeDiscord
from ..fakes.fireworks import FakeFireworks
from ..servers import MJCORE, Served, mjcore_serve

EXAMPLES = int(os.environ.get("MJCORE_FUZZ_EXAMPLES", "12"))
ADMIN = ("fuzz-admin", "fuzz-admin-password")
PROVIDER_PATHS = ("/api/generate", "/v1/api/trigger/", "/v1/images/")


@schemathesis.check
def no_unexpected_server_error(ctx: Any, response: Any, case: Any) -> None:
    """5xx only where a (fake) provider may fail: 502/503/504 of generation endpoints."""
    status = response.status_code
    provider = case.path.startswith(PROVIDER_PATHS) and status in (502, 503, 504)
    if status >= 500 and not provider:
        raise AssertionError(f"{case.method} {case.path} answered {status}")


@pytest.fixture(scope="module")
def fuzz_server(
    discord: FakeDiscord, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("fuzz")
    with FakeFireworks() as fireworks:
        env = (
            discord.env()
            | fireworks.env()
            | {
                "MJCORE_DATABASE_URL": f"sqlite:///{home / 'fuzz.db'}",
                "MJCORE_ADMIN_USERNAME": ADMIN[0],
                "MJCORE_ADMIN_PASSWORD": ADMIN[1],
                "MJCORE_MJ_CONCURRENCY": "1000",
                "MJCORE_MJ_QUEUE_SIZE": "100000",
            }
            | GENEROUS_RATE_LIMITS
        )
        with mjcore_serve(env, home) as server:
            yield {"server": server, "auth": asyncio.run(_credentials(server))}


async def _credentials(server: Served) -> dict[str, dict[str, str]]:
    mj = await new_user(server.database_url, 1_000_000)
    basic = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    admin = {"Authorization": f"Basic {basic}"}
    async with httpx.AsyncClient(base_url=server.url) as client:
        login = {"username": "fuzzer", "password": "fuzzer-password"}
        await client.post("/api/register", json=login)
        token = (await client.post("/api/login", json=login)).json()["token"]
        user = {"Authorization": f"Bearer {token}"}
        code = await client.post("/api/admin/codes", json={"credits": 100_000}, headers=admin)
        await client.post("/api/redeem", json={"code": code.json()["codes"][0]}, headers=user)
    proxy = {"mj-api-secret": mj.key}  # midjourney-proxy's header
    return {"appKey": mj.headers, "mjApiSecret": proxy, "jwt": user, "admin": admin}


# the document the server serves, built by the same code (the server's copy is checked below)
schema = schemathesis.openapi.from_dict(document("http://127.0.0.1"))


def _auth(case: Any, credentials: dict[str, dict[str, str]]) -> dict[str, str]:
    for requirement in case.operation.definition.raw.get("security", []):
        for name in requirement:
            if name in credentials:
                return credentials[name]
    return {}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=EXAMPLES <= 50,  # the short form is the same every run
)
def test_fuzzed_requests_get_documented_answers(case: Any, fuzz_server: dict[str, Any]) -> None:
    case.call_and_validate(
        base_url=fuzz_server["server"].url,
        headers=_auth(case, fuzz_server["auth"]),
        checks=[
            no_unexpected_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=30,
    )


def test_the_server_serves_this_document(fuzz_server: dict[str, Any]) -> None:
    server: Served = fuzz_server["server"]
    served = httpx.get(f"{server.url}/openapi.json").json()
    assert served == document(server.url)


def test_the_ledger_verifies_after_the_fuzzing(fuzz_server: dict[str, Any]) -> None:
    server: Served = fuzz_server["server"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
    env["MJCORE_DATABASE_URL"] = server.database_url
    result = subprocess.run(
        [MJCORE, "ledger", "verify"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in server.log.read_text()
