"""``mjcore serve``: run the app under uvicorn."""

from __future__ import annotations

import logging

from .settings import Settings


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    import uvicorn

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        "entrypoints.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        access_log=False,  # ours (entrypoints.app.AccessLog) leaves out query strings
    )
    return 0
