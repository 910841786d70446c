"""The tests' fake Discord and Fireworks as standalone servers, so they load their own core."""

from __future__ import annotations

import sys

import uvicorn
from tests.fakes.discord import FakeDiscord
from tests.fakes.fireworks import FakeFireworks

if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    fake = FakeDiscord() if kind == "discord" else FakeFireworks()
    uvicorn.run(fake.app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)
