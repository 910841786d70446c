"""The OpenAPI 3.1 document of both surfaces, kept beside the routes.

Bodies use the same limits as the code that checks them; a test makes sure every
served route is documented and every documented route is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mjcore.codes import MAX_CODE_CREDITS, MAX_CODES_PER_BATCH
from mjcore.midjourney import MjAction
from mjcore.services.images import ASPECT_RATIOS, FORMATS, MAX_PROMPT, MAX_SEED
from mjcore.tasks import TaskStatus

from .trigger_schema import DIRECTIONS, ZOOMOUTS
from .trigger_schema import MAX_PROMPT as MJ_MAX_PROMPT

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(
    required: dict[str, Schema], optional: dict[str, Schema] | None = None, *, closed: bool = True
) -> Schema:
    """An object schema; ``closed`` objects refuse unknown keys, as the server does."""
    schema: Schema = {
        "type": "object",
        "properties": required | (optional or {}),
        "required": list(required),
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def json_content(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


# -- the trigger surface ------------------------------------------------------------------

DETAIL = obj({"detail": STR}, {"code": INT}, closed=False)
SNOWFLAKE: Schema = {
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]{1,20}$"}]
}
TRIGGER_TYPES = [a.trigger_type for a in MjAction]
ACCEPTED = obj(
    {
        "code": INT,
        "message": STR,
        "trigger_id": STR,
        "trigger_type": {"enum": TRIGGER_TYPES},
        "task_id": STR,
        "result": STR,
        "status": {"enum": list(TaskStatus)},
    },
    closed=False,
)
TASK = obj(
    {
        "task_id": STR,
        "provider": {"enum": ["midjourney", "fireworks"]},
        "trigger_id": nullable(STR),
        "trigger_type": STR,
        "status": {"enum": list(TaskStatus)},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "prompt": STR,
        "image_url": nullable(STR),
        "fail_reason": nullable(STR),
        "msg_id": nullable(STR),
        "msg_hash": nullable(STR),
        "parent_task_id": nullable(STR),
        "index": nullable(INT),
        "cost": INT,
        "refunded": BOOL,
        "created_at": STR,
        "started_at": nullable(STR),
        "finished_at": nullable(STR),
    },
    {"prompts": {"type": "array", "items": STR}},
)
GRID_BY_TASK = {"task_id": {"type": "string", "minLength": 1, "maxLength": 64}}
GRID_BY_MESSAGE = {
    "msg_id": SNOWFLAKE,
    "msg_hash": {"type": "string", "pattern": "^[0-9a-fA-F-]{8,64}$"},
    "trigger_id": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,64}$"},
}
INDEX: Schema = {"type": "integer", "minimum": 1, "maximum": 4}


def button_body(action: MjAction) -> Schema:
    extra: dict[str, Schema] = {}
    optional: dict[str, Schema] = {"index": INDEX}
    if action in (MjAction.UPSCALE, MjAction.VARIATION):
        extra, optional = {"index": INDEX}, {}
    elif action is MjAction.EXPAND:
        extra = {"direction": {"enum": list(DIRECTIONS)}}
    elif action is MjAction.ZOOMOUT:
        extra = {"zoomout": {"enum": list(ZOOMOUTS)}}
    return {
        "oneOf": [
            obj(GRID_BY_TASK | extra, optional),
            obj(GRID_BY_MESSAGE | extra, optional),
        ]
    }


def _op(
    summary: str,
    responses: Mapping[int, Schema | None],
    *,
    body: Schema | None = None,
    security: str | None = None,
    content: Schema | None = None,
    parameters: list[Schema] | None = None,
) -> Schema:
    operation: Schema = {"summary": summary, "responses": {}}
    for status, schema in responses.items():
        described: Schema = {"description": str(status)}
        if schema is not None:
            described["content"] = json_content(schema)
        operation["responses"][str(status)] = described
    if body is not None:
        operation["requestBody"] = {"required": True, "content": json_content(body)}
    if content is not None:
        operation["requestBody"] = {"required": True, "content": content}
    if security is not None:
        operation["security"] = [{security: []}]
    if parameters:
        operation["parameters"] = parameters
    return operation


KEY_ERRORS: dict[int, Schema] = {400: DETAIL, 401: DETAIL, 403: DETAIL}
CONSUMING_ERRORS: dict[int, Schema] = KEY_ERRORS | {429: DETAIL, 502: DETAIL, 503: DETAIL}


def trigger_paths() -> dict[str, Schema]:
    prefix = "/v1/api/trigger"
    paths: dict[str, Schema] = {
        f"{prefix}/imagine": {
            "post": _op(
                "Generate a grid (cost 1)",
                {200: ACCEPTED} | CONSUMING_ERRORS,
                body=obj(
                    {
                        "prompt": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MJ_MAX_PROMPT,
                            "pattern": r"\S",
                        }
                    },
                    {"picurl": nullable({"type": "string", "pattern": "^https?://"})},
                ),
                security="appKey",
            )
        },
        f"{prefix}/describe": {
            "post": _op(
                "Describe an uploaded image (cost 1)",
                {200: ACCEPTED, 404: DETAIL} | CONSUMING_ERRORS,
                body=obj({"upload_filename": STR, "trigger_id": STR}),
                security="appKey",
            )
        },
        f"{prefix}/upload": {
            "post": _op(
                "Upload an image to Discord (free)",
                {
                    200: obj(
                        {
                            "message": STR,
                            "upload_filename": STR,
                            "upload_url": STR,
                            "trigger_id": STR,
                        }
                    ),
                    413: DETAIL,
                    502: DETAIL,
                }
                | KEY_ERRORS,
                content={
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                            "required": ["file"],
                        }
                    }
                },
                security="appKey",
            )
        },
        f"{prefix}/message": {
            "post": _op(
                "Post an upload as a message; its URL can be an imagine picurl (free)",
                {200: obj({"message": STR, "picurl": STR}), 502: DETAIL} | KEY_ERRORS,
                body=obj({"upload_filename": STR}),
                security="appKey",
            )
        },
        f"{prefix}/queue/release": {
            "post": _op(
                "Free the caller's queue slots of a trigger (free, idempotent)",
                {
                    200: obj(
                        {"message": STR, "trigger_id": STR, "trigger_type": STR, "released": INT}
                    )
                }
                | KEY_ERRORS,
                body=obj({"trigger_id": STR}),
                security="appKey",
            )
        },
        f"{prefix}/task/{{task_id}}": {
            "get": _op(
                "One of the caller's tasks (free)",
                {200: TASK, 404: DETAIL} | KEY_ERRORS,
                security="appKey",
                parameters=[{"name": "task_id", "in": "path", "required": True, "schema": STR}],
            )
        },
        f"{prefix}/tasks": {
            "get": _op(
                "The caller's tasks, newest first (free)",
                {
                    200: obj(
                        {
                            "success": {"const": True},
                            "data": {"type": "array", "items": TASK},
                            "total": INT,
                        }
                    )
                }
                | KEY_ERRORS,
                security="appKey",
                parameters=[
                    {"name": "status", "in": "query", "schema": {"enum": list(TaskStatus)}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
            )
        },
        f"{prefix}/midjourney/result": {
            "post": _op(
                "The listener bot's event (no key; the callback secret when configured)",
                {
                    200: obj({"message": {"enum": ["success", "unchanged", "ignored"]}}),
                    400: DETAIL,
                    403: DETAIL,
                },
                body=obj(
                    {
                        "type": {"enum": ["start", "generating", "end", "error", "banned", "text"]},
                        "id": SNOWFLAKE,
                    },
                    {
                        "content": STR,
                        "trigger_id": nullable(STR),
                        "attachments": {
                            "type": "array",
                            "items": obj({"url": STR}, {"filename": STR}, closed=False),
                        },
                        "embeds": {
                            "type": "array",
                            "items": obj(
                                {},
                                {
                                    "description": STR,
                                    "image": nullable(obj({"url": STR}, closed=False)),
                                },
                                closed=False,
                            ),
                        },
                    },
                    closed=False,
                ),
                security="callbackSecret",
            )
        },
    }
    for action in MjAction:
        if action.is_button:
            paths[f"{prefix}/{action.value}"] = {
                "post": _op(
                    f"{action.trigger_type} on a finished grid or image (cost 1)",
                    {200: ACCEPTED, 404: DETAIL} | CONSUMING_ERRORS,
                    body=button_body(action),
                    security="appKey",
                )
            }
    return paths


# -- the image surface --------------------------------------------------------------------

ERROR = obj({"error": STR})
USER_NAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}
PASSWORD: Schema = {"type": "string", "minLength": 8, "maxLength": 1024}
USER = obj({"username": STR, "credits": INT, "totalGenerated": INT, "createdAt": INT})
RECORD = obj(
    {
        "username": STR,
        "prompt": STR,
        "imageUrl": nullable(STR),
        "requestId": STR,
        "createdAt": INT,
        "aspectRatio": nullable(STR),
        "seed": nullable(INT),
        "provider": STR,
        "taskId": STR,
    }
)
RECORDS = obj({"records": {"type": "array", "items": RECORD}})
JWT_ERRORS: dict[int, Schema] = {400: ERROR, 401: ERROR}
ADMIN_ERRORS: dict[int, Schema] = {401: ERROR}


def _limit(default: int, high: int) -> Schema:
    return {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": high, "default": default},
    }


def image_paths() -> dict[str, Schema]:
    credentials = obj({"username": USER_NAME, "password": PASSWORD})
    return {
        "/api/register": {
            "post": _op(
                "Register (0 credits)",
                {200: obj({"message": STR, "username": STR}), 400: ERROR},
                body=credentials,
            )
        },
        "/api/login": {
            "post": _op(
                "Log in; returns a JWT",
                {
                    200: obj(
                        {
                            "message": STR,
                            "token": STR,
                            "user": obj({"username": STR, "credits": INT, "totalGenerated": INT}),
                        }
                    ),
                    400: ERROR,
                    401: ERROR,
                },
                body=obj({"username": STR, "password": STR}),
            )
        },
        "/api/user": {"get": _op("The caller", {200: USER, 401: ERROR}, security="jwt")},
        "/api/redeem": {
            "post": _op(
                "Redeem a code",
                {200: obj({"message": STR, "credits": INT, "totalCredits": INT})} | JWT_ERRORS,
                body=obj({"code": STR}),
                security="jwt",
            )
        },
        "/api/generate": {
            "post": _op(
                "Generate an image with Fireworks (cost 1; refunded on failure)",
                {
                    200: obj(
                        {
                            "message": STR,
                            "request_id": STR,
                            "image_url": STR,
                            "credits_remaining": INT,
                            "seed": nullable(INT),
                            "task_id": STR,
                        }
                    ),
                    402: ERROR,
                    422: ERROR,
                    502: ERROR,
                    504: ERROR,
                }
                | JWT_ERRORS,
                body=obj(
                    {
                        "prompt": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_PROMPT,
                            "pattern": r"\S",
                        }
                    },
                    {
                        "aspect_ratio": {"enum": list(ASPECT_RATIOS)},
                        "output_format": {"enum": list(FORMATS)},
                        "seed": nullable({"type": "integer", "minimum": 0, "maximum": MAX_SEED}),
                    },
                ),
                security="jwt",
            )
        },
        "/api/records": {
            "get": _op(
                "The caller's records, newest first",
                {200: RECORDS} | JWT_ERRORS,
                security="jwt",
                parameters=[_limit(20, 100)],
            )
        },
        "/api/admin/codes": {
            "post": _op(
                "Issue redemption codes",
                {
                    200: obj(
                        {"message": STR, "codes": {"type": "array", "items": STR}, "credits": INT}
                    ),
                    400: ERROR,
                }
                | ADMIN_ERRORS,
                body=obj(
                    {"credits": {"type": "integer", "minimum": 1, "maximum": MAX_CODE_CREDITS}},
                    {
                        "count": {"type": "integer", "minimum": 1, "maximum": MAX_CODES_PER_BATCH},
                        "expires_in_days": nullable(
                            {"type": "integer", "minimum": 1, "maximum": 3650}
                        ),
                    },
                ),
                security="admin",
            )
        },
        "/api/admin/users": {
            "get": _op(
                "All users",
                {200: obj({"users": {"type": "array", "items": USER}}), 400: ERROR} | ADMIN_ERRORS,
                security="admin",
                parameters=[
                    _limit(1000, 10_000),
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
            )
        },
        "/api/admin/records": {
            "get": _op(
                "Everyone's records",
                {200: RECORDS, 400: ERROR} | ADMIN_ERRORS,
                security="admin",
                parameters=[_limit(50, 100)],
            )
        },
        "/api/admin/stats": {
            "get": _op(
                "Totals",
                {
                    200: obj(
                        {
                            "totalUsers": INT,
                            "totalRecords": INT,
                            "totalCodes": INT,
                            "usedCodes": INT,
                            "totalCredits": INT,
                        }
                    )
                }
                | ADMIN_ERRORS,
                security="admin",
            )
        },
    }


def service_paths() -> dict[str, Schema]:
    return {
        "/healthz": {
            "get": _op("Database answers", {200: obj({"status": STR}), 503: obj({"status": STR})})
        },
        "/images/{name}": {
            "get": {
                "summary": "A stored image",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": STR}],
                "responses": {
                    "200": {
                        "description": "the image",
                        "content": {f"image/{kind}": {} for kind in ("png", "jpeg", "webp", "gif")},
                    },
                    "404": {"description": "no such image", "content": json_content(ERROR)},
                },
            }
        },
        "/openapi.json": {"get": _op("This document", {200: {"type": "object"}})},
    }


def openapi_document(public_url: str) -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mjcore",
            "version": "0.1.0",
            "description": "Midjourney trigger API and image API over one credit ledger.",
        },
        "servers": [{"url": public_url}],
        "components": {
            "securitySchemes": {
                "appKey": {"type": "http", "scheme": "bearer", "description": "an app key"},
                "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "admin": {"type": "http", "scheme": "basic"},
                "callbackSecret": {"type": "apiKey", "in": "query", "name": "secret"},
            }
        },
        "paths": trigger_paths() | image_paths() | service_paths(),
    }
