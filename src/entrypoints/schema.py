"""Request and response classes: the limits ride on the fields, the OpenAPI schema is read
off the classes, and cattrs structures bodies into them.

A request field declared with :func:`rule` is checked by the core's own limit object
(:mod:`mjcore.limits`), so the number is written once: the core enforces it for embedders,
the edge refuses a body with it before any work, and ``/openapi.json`` documents it.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, NewType, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from attrs import NOTHING, define, field

from mjcore.errors import InvalidInput
from mjcore.limits import Limit, Text, Whole
from mjcore.webhooks import HOOK_URL, Hook, HookStyle

T = TypeVar("T")
Schema = dict[str, Any]
LIMIT = "mjcore.limit"
Snowflake = NewType("Snowflake", str)
"""A Discord id: clients send numbers (above 2**53 they lose digits) or strings; kept as str."""
_SNOWFLAKE = re.compile(r"[0-9]{1,20}")
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


class BadRequest(Exception):
    """The request itself is malformed; the surface turns this into its 400 body."""


def _check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        attribute.metadata[LIMIT].check(value)


def rule(limit: Limit, default: Any = NOTHING) -> Any:
    """A request field checked by ``limit`` (``None`` passes: optional fields default to it)."""
    return field(default=default, validator=_check, metadata={LIMIT: limit})


# -- structuring ----------------------------------------------------------------------------


def _exact(kind: type) -> Callable[[Any, type], Any]:
    def structure(value: Any, _: type) -> Any:
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def _lenient_str(value: Any, _: type) -> str:
    """As pydantic reads a ``str`` field: numbers become their decimal text."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _lenient_int(value: Any, _: type) -> int:
    """As pydantic reads an ``int`` field: ``"1"`` and ``1.0`` are 1; ``1.5``, ``true`` not."""
    if type(value) is int:
        return value
    if type(value) is str and _INTEGER.fullmatch(value.strip()):
        return int(value)
    if type(value) is float and value.is_integer() and abs(value) < 2**63:
        return int(value)
    raise TypeError(f"expected a whole number, got {type(value).__name__}")


def _lenient_bool(value: Any, _: type) -> bool:
    """As pydantic reads a ``bool`` field (a query string says ``1`` or ``true``)."""
    if type(value) is bool:
        return value
    if isinstance(value, str) and value.lower() in (
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    ):
        return value.lower() in ("1", "true", "yes", "on")
    raise TypeError(f"expected true or false, got {type(value).__name__}")


def _lenient_optional_str(value: Any, _: type) -> str | None:
    """An optional text field left empty (``picurl: ""``) means it was not given."""
    return None if value is None or value == "" else _lenient_str(value, str)


def _enum(value: Any, cls: type[enum.Enum]) -> enum.Enum:
    """An enum member by value (text is matched in any case: ``success`` is SUCCESS)."""
    if isinstance(value, str):
        for member in cls:
            if isinstance(member.value, str) and member.value.lower() == value.lower():
                return member
    return cls(value)


def _snowflake(value: Any, _: type) -> Snowflake:
    if (type(value) is int and value >= 0) or (
        isinstance(value, str) and _SNOWFLAKE.fullmatch(value)
    ):
        return Snowflake(str(value))
    raise ValueError("expected a Discord id (digits, as a number or a string)")


def make_converter(*, lenient: bool) -> cattrs.Converter:
    """One converter per surface.

    Strict (our own surfaces): exact JSON types, unknown keys refused. Lenient (bodies
    that upstream clients send, read as their pydantic models read them): unknown keys
    ignored, numeric strings to numbers, numbers to string ids, ``""`` for an absent
    optional string.
    """
    converter = cattrs.Converter(forbid_extra_keys=not lenient)
    converter.register_structure_hook(float, _exact(float))
    converter.register_structure_hook(bool, _lenient_bool if lenient else _exact(bool))
    if lenient:
        converter.register_structure_hook(str, _lenient_str)
        converter.register_structure_hook(int, _lenient_int)
        converter.register_structure_hook_func(lambda t: t == (str | None), _lenient_optional_str)
    else:
        converter.register_structure_hook(str, _exact(str))
        converter.register_structure_hook(int, _exact(int))
    converter.register_structure_hook(Snowflake, _snowflake)
    # StrEnum too: it comes before str in a StrEnum's MRO, so the str hook cannot take it
    for base in (enum.Enum, enum.StrEnum):
        converter.register_structure_hook(base, _enum)
    return converter


def _message(exc: BaseException, _: Any) -> str:
    if isinstance(exc, InvalidInput):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown field(s): {', '.join(sorted(exc.extra_fields))}"
    text = str(exc)
    return text if text and len(text) < 120 else "invalid value"


def describe(exc: Exception) -> str:
    """cattrs' error tree as one readable line: ``what is wrong @ $.field``."""
    if isinstance(exc, cattrs.BaseValidationError):
        lines = cattrs.transform_error(exc, format_exception=_message)
        return "; ".join(line.removesuffix(" @ $") for line in lines)
    return _message(exc, None)


def structure(converter: cattrs.Converter, data: Any, cls: type[T], what: str = "body") -> T:
    """``data`` as ``cls``, or :class:`BadRequest` saying what is wrong."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, InvalidInput, TypeError, ValueError, KeyError) as exc:
        raise BadRequest(f"invalid {what}: {describe(exc)}") from None


# -- OpenAPI schemas ------------------------------------------------------------------------


def _limit_schema(limit: Limit | None, schema: Schema) -> Schema:
    if isinstance(limit, Text):
        if limit.choices is not None:
            return {"enum": list(limit.choices)}
        schema = schema | {"maxLength": limit.max_length}
        if limit.min_length:
            schema["minLength"] = limit.min_length
        if limit.pattern is not None:
            schema["pattern"] = f"^(?:{limit.pattern})$"
        elif limit.nonblank:
            schema["pattern"] = r"\S"
    elif isinstance(limit, Whole):
        if limit.choices is not None:
            return {"enum": list(limit.choices)}
        schema = schema | {"minimum": limit.low, "maximum": limit.high}
    return schema


class Components:
    """Named schemas of the classes a document uses (``#/components/schemas/<Class>``)."""

    def __init__(self) -> None:
        self.schemas: Schema = {}
        self._classes: dict[str, type] = {}

    def ref(self, cls: type) -> Schema:
        name = cls.__name__
        if self._classes.setdefault(name, cls) is not cls:
            raise ValueError(f"two documented classes are named {name}")
        if name not in self.schemas:
            self.schemas[name] = {}  # a placeholder while its fields are read
            self.schemas[name] = object_schema(cls, self)
        return {"$ref": f"#/components/schemas/{name}"}


def type_schema(tp: Any, limit: Limit | None = None, refs: Components | None = None) -> Schema:
    """The JSON schema of a Python type (with the field's limit, if any)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        members = [m for m in get_args(tp) if m is not type(None)]
        inner = type_schema(members[0], limit, refs) if len(members) == 1 else {}
        return {"anyOf": [inner, {"type": "null"}]} if type(None) in get_args(tp) else inner
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (list, tuple):
        return {"type": "array", "items": type_schema(get_args(tp)[0], None, refs)}
    if origin in (dict, Mapping):
        return {"type": "object"}
    if tp is Snowflake:
        return {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": f"^{_SNOWFLAKE.pattern}$"},
            ]
        }
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [member.value for member in tp]}
    if attrs.has(tp):
        return object_schema(tp) if refs is None else refs.ref(tp)
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if tp in simple:
        return _limit_schema(limit, {"type": simple[tp]})
    return {}


def object_schema(cls: type, refs: Components | None = None) -> Schema:
    """An attrs class as a JSON object schema. Classes with ``open_schema = True`` (bodies we
    do not own, or answers that may grow) allow keys beyond their fields."""
    attrs.resolve_types(cls)
    properties: Schema = {}
    required = []
    for attribute in attrs.fields(cls):
        limit = attribute.metadata.get(LIMIT)
        properties[attribute.alias] = type_schema(attribute.type, limit, refs)
        if attribute.default is NOTHING:
            required.append(attribute.alias)
    schema: Schema = {"type": "object", "properties": properties, "required": required}
    if not getattr(cls, "open_schema", False):
        schema["additionalProperties"] = False
    return schema


def query_parameters(cls: type) -> list[Schema]:
    """Query-string parameters of an attrs class (every field optional: absent is None)."""
    attrs.resolve_types(cls)
    parameters = []
    for attribute in attrs.fields(cls):
        tp = attribute.type
        if get_origin(tp) in (Union, types.UnionType):
            tp = next(m for m in get_args(tp) if m is not type(None))
        schema = type_schema(tp, attribute.metadata.get(LIMIT))
        if attribute.default not in (NOTHING, None):
            schema["default"] = attribute.default
        parameters.append({"name": attribute.alias, "in": "query", "schema": schema})
    return parameters


@define(kw_only=True)
class Notifiable:
    """A consuming request's callback: ``notify_hook``, or midjourney-proxy's ``notifyHook``."""

    notify_hook: str | None = rule(HOOK_URL, None)
    notifyHook: str | None = rule(HOOK_URL, None)  # noqa: N815 (novicezk's name)

    def hooks(self, style: HookStyle = HookStyle.MJCORE) -> tuple[Hook, ...]:
        url = self.notify_hook or self.notifyHook
        return (Hook(url, style),) if url else ()


class Open:
    """Base of a class whose JSON may carry keys it does not name (bodies read leniently,
    answers that may grow): its schema allows them."""

    open_schema: ClassVar[bool] = True
