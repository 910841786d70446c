from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mjcore.ports import Store

from .support import FakeClock, open_test_store, store_params


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=store_params())
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every store, one after another: the contract suite runs once per backend."""
    async with open_test_store(request.param, tmp_path) as opened:
        yield opened
