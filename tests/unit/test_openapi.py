"""The OpenAPI document is read off the routes and the request classes' own limits."""

from __future__ import annotations

from typing import Any

import pytest
from attrs import define
from starlette.routing import Mount, Route

from entrypoints.app import create_app, document
from entrypoints.http import Doc, Operation
from entrypoints.openapi import openapi_document
from entrypoints.pages import PageRoute
from entrypoints.schema import BadRequest, make_converter, rule, structure
from entrypoints.settings import Settings
from mjcore import midjourney as mj
from mjcore.limits import Text, Whole
from mjcore.services import images


def _document() -> dict[str, Any]:
    return document("http://x")


def served_operations() -> set[tuple[str, str]]:
    app = create_app(Settings(database_url="memory://"))
    found: set[tuple[str, str]] = set()

    def walk(routes: list[object], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(list(route.routes), prefix + route.path)
            elif isinstance(route, PageRoute):
                continue  # the web pages answer HTML to browsers; the document is the API's
            elif isinstance(route, Route) and "{rest:path}" not in route.path:
                for method in route.methods or ():
                    if method != "HEAD":
                        found.add((method.lower(), prefix + route.path))

    walk(list(app.routes), "")
    return found


def test_every_route_is_documented_and_every_documented_route_is_served() -> None:
    paths = _document()["paths"]
    documented = {(method, path) for path, item in paths.items() for method in item}
    served = served_operations()
    assert served - documented == set()
    assert documented - served == set()
    assert len(served) >= 31


def test_every_operation_documents_its_answers_and_auth() -> None:
    document = _document()
    schemes = set(document["components"]["securitySchemes"])
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "200" in operation["responses"], (method, path)
            for requirement in operation.get("security", []):
                assert set(requirement) <= schemes
            if path.startswith("/api/") and "security" in operation:
                assert "401" in operation["responses"], (method, path)


def test_the_documented_limits_are_the_cores() -> None:
    schemas = _document()["components"]["schemas"]
    prompt = schemas["ImagineIn"]["properties"]["prompt"]
    assert prompt["maxLength"] == mj.PROMPT.max_length
    index = schemas["IndexedIn"]["properties"]["index"]
    assert (index["minimum"], index["maximum"]) == (mj.INDEX.low, mj.INDEX.high)
    assert schemas["ZoomIn"]["properties"]["zoomout"] == {"enum": [50, 75]}
    assert schemas["GenerateIn"]["additionalProperties"] is False  # the image API is strict
    assert "additionalProperties" not in schemas["ImagineIn"]  # upstream bodies are lenient


def _surface(prompt_limit: int, count_high: int) -> tuple[type, dict[str, Any]]:
    """A request class with the given limits, behind a documented route."""

    @define(kw_only=True)
    class Probe:
        prompt: str = rule(Text("prompt", prompt_limit, nonblank=True))
        count: int = rule(Whole("count", 1, count_high), 1)

    async def handler(request: object) -> Any:
        raise NotImplementedError

    route = Operation("/probe", handler, "POST", Doc("probe", {200: None}, body=Probe))
    return Probe, openapi_document([route], "http://x")["components"]["schemas"]["Probe"]


@pytest.mark.parametrize(("prompt_limit", "count_high"), [(10, 3), (25, 7)])
def test_one_limit_changed_on_a_request_class_moves_validation_and_the_document(
    prompt_limit: int, count_high: int
) -> None:
    cls, schema = _surface(prompt_limit, count_high)
    converter = make_converter(lenient=False)

    assert schema["properties"]["prompt"]["maxLength"] == prompt_limit
    assert schema["properties"]["count"]["maximum"] == count_high
    structure(converter, {"prompt": "x" * prompt_limit, "count": count_high}, cls)
    with pytest.raises(BadRequest, match=f"at most {prompt_limit} characters"):
        structure(converter, {"prompt": "x" * (prompt_limit + 1)}, cls)
    with pytest.raises(BadRequest, match=f"from 1 to {count_high}"):
        structure(converter, {"prompt": "x", "count": count_high + 1}, cls)


def test_the_proxy_and_openai_surfaces_are_documented_with_the_cores_limits() -> None:
    document = _document()
    paths, schemas = document["paths"], document["components"]["schemas"]
    assert paths["/mj/submit/imagine"]["post"]["security"] == [{"mjApiSecret": []}]
    assert document["components"]["securitySchemes"]["mjApiSecret"]["name"] == "mj-api-secret"
    listed = paths["/mj/task/list-by-condition"]["post"]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/MjTask"},
    }
    assert schemas["MjImagineIn"]["properties"]["prompt"]["maxLength"] == mj.PROMPT.max_length
    assert "additionalProperties" not in schemas["MjImagineIn"]  # read as new-api sends it
    n = schemas["ImagesIn"]["properties"]["n"]
    assert (n["minimum"], n["maximum"]) == (images.COUNT.low, images.COUNT.high)
    assert schemas["ImagesIn"]["additionalProperties"] is False  # as strict as OpenAI's
    assert {"/v1/images/generations", "/v1/models"} <= set(paths)
