"""The OpenAPI 3.1 document, read off the routes.

Every :class:`~entrypoints.http.Operation` carries the classes its handler parses and
answers with; their fields carry the core's limits. So the document is generated, and
only what no class says (summaries, security schemes) is written here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute, Mount

from mjcore.idempotency import IDEMPOTENCY_KEY

from .http import Doc, Operation
from .schema import Components, Schema, query_parameters, type_schema

SECURITY_SCHEMES: Schema = {
    "appKey": {"type": "http", "scheme": "bearer", "description": "an app key"},
    "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "admin": {"type": "http", "scheme": "basic"},
    "callbackSecret": {"type": "apiKey", "in": "query", "name": "secret"},
    "mjApiSecret": {
        "type": "apiKey",
        "in": "header",
        "name": "mj-api-secret",
        "description": "an app key (Authorization: Bearer <app key> works too)",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "MJCORE_METRICS_TOKEN; without it set, /metrics is open",
    },
}
_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def operation_schema(path: str, doc: Doc, refs: Components) -> Schema:
    """One operation object: parameters, body, answers and security, from ``doc``."""
    operation: Schema = {"summary": doc.summary, "responses": {}}
    answers = dict(doc.answers)
    if doc.body is not None and 400 in answers:  # every JSON body is capped: 413 over it
        answers.setdefault(413, answers[400])
    for status, cls in sorted(answers.items()):
        described: Schema = {"description": str(status)}
        if status == 200 and doc.produces is not None:
            described["content"] = doc.produces
        elif cls is not None:
            described["content"] = _json(type_schema(cls, refs=refs))
        operation["responses"][str(status)] = described
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
    ]
    if doc.query is not None:
        parameters += query_parameters(doc.query)
    if doc.idempotent:
        key = {"type": "string", "maxLength": IDEMPOTENCY_KEY.max_length, "minLength": 1}
        parameters.append({"name": "Idempotency-Key", "in": "header", "schema": key})
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None:
        operation["requestBody"] = {"required": True, "content": _json(refs.ref(doc.body))}
    elif doc.content is not None:
        operation["requestBody"] = {"required": True, "content": doc.content}
    if doc.security is not None:
        operation["security"] = [{doc.security: []}]
    return operation


def operations(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, str, Doc]]:
    """(method, path, doc) of every documented route, mounts included."""
    for route in routes:
        if isinstance(route, Mount):
            yield from operations(route.routes, prefix + route.path)
        elif isinstance(route, Operation):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield method.lower(), prefix + route.path, route.doc


def openapi_document(routes: Iterable[BaseRoute], public_url: str) -> dict[str, Any]:
    paths: Schema = {}
    refs = Components()
    for method, path, doc in operations(routes):
        operation = operation_schema(path, doc, refs)
        paths.setdefault(_PATH_PARAM.sub(r"{\1}", path), {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mjcore",
            "version": "0.2.0",
            "description": "Midjourney trigger API and image API over one credit ledger.",
        },
        "servers": [{"url": public_url}],
        "components": {"schemas": refs.schemas, "securitySchemes": SECURITY_SCHEMES},
        "paths": paths,
    }
