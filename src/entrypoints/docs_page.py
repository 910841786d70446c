"""``GET /docs``: Swagger UI for ``/openapi.json``, every asset served from the package.

No CDN: the page, its script and its stylesheet come from this server, and the
Content-Security-Policy lets the browser load nothing from anywhere else.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from .http import Doc, Operation

STATIC = "/docs/static"
# 'self' only; data: images are the icons Swagger UI's stylesheet carries inline (no request)
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mjcore API</title>
<link rel="stylesheet" href="{STATIC}/swagger-ui.css">
<link rel="icon" type="image/png" href="{STATIC}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{STATIC}/swagger-ui-bundle.js"></script>
<script src="{STATIC}/docs.js"></script>
</body>
</html>
"""


async def docs(request: Request) -> HTMLResponse:
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    return HTMLResponse(PAGE, headers=headers)


def docs_routes() -> list[BaseRoute]:
    return [
        Operation(
            "/docs",
            docs,
            "GET",
            Doc("This API's documentation (Swagger UI)", {200: None}, produces={"text/html": {}}),
        ),
        Mount(STATIC, StaticFiles(packages=[("entrypoints", "static")]), name="docs-static"),
    ]
