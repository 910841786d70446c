"""The OpenAPI document and the served routes are the same set."""

from __future__ import annotations

from starlette.routing import Mount, Route

from entrypoints.app import create_app
from entrypoints.openapi import openapi_document
from entrypoints.settings import Settings


def served_operations() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="memory://"))
    found: set[tuple[str, str]] = set()

    def walk(routes: list[object], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(list(route.routes), prefix + route.path)
            elif isinstance(route, Route) and "{rest:path}" not in route.path:
                for method in route.methods or ():
                    if method != "HEAD":
                        found.add((method.lower(), prefix + route.path))

    walk(list(app.routes), "")
    return found


def documented_operations() -> set[tuple[str, str]]:
    paths = openapi_document("http://x")["paths"]
    return {(method, path) for path, item in paths.items() for method in item}


def test_every_route_is_documented_and_every_documented_route_is_served() -> None:
    served, documented = served_operations(), documented_operations()
    assert served - documented == set()
    assert documented - served == set()
    assert len(served) >= 27


def test_every_operation_documents_its_answers_and_auth() -> None:
    document = openapi_document("http://x")
    schemes = set(document["components"]["securitySchemes"])
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "200" in operation["responses"], (method, path)
            for requirement in operation.get("security", []):
                assert set(requirement) <= schemes
            if path.startswith("/api/") and "security" in operation:
                assert "401" in operation["responses"], (method, path)
