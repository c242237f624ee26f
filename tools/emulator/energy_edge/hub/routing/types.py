"""Route data types (messages, endpoints, errors, the undefined/null sentinels) and the evaluation context."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_PRIORITY: Final = 2_000_000_000
"""The priority of a route that names none; 0 is the most urgent of the explicit values 0-9."""

_MAX_TTL: Final = 2**32 - 1


# ====================================================================== public data types


@dataclass(frozen=True)
class RoutableMessage:
    """What routing looks at: where a message comes from, its body and its two property bags.

    ``source`` is ``/messages`` (leaf-device telemetry), ``/messages/modules/{m}`` (module message without
    an output name), ``/messages/modules/{m}/outputs/{o}`` or ``/twinChangeNotifications``. Property names
    are matched case-insensitively, as edgeHub does; system property keys use the official names
    (``messageId``, ``contentType``, ``connectionModuleId``, ...).
    """

    source: str
    body: bytes
    app_properties: Mapping[str, str]
    system_properties: Mapping[str, str]


class RouteError(ValueError):
    """A route cannot be used. The message names the route and, when there is one, the 1-based position."""

    def __init__(self, route: str, reason: str, line: int | None = None, column: int | None = None) -> None:
        self.route = route
        self.reason = reason
        self.line = line
        self.column = column
        text = f"route {route!r}: {reason}"
        if line is not None:
            text += f" at line {line}, column {column}"
        super().__init__(text)


@dataclass(frozen=True)
class Endpoint:
    """Where a route delivers: ``upstream`` (IoT Hub) or ``module_input`` (a module's named input)."""

    kind: str
    module_id: str | None = None
    input_name: str | None = None

    def __str__(self) -> str:
        if self.kind == "upstream":
            return "$upstream"
        return f'BrokeredEndpoint("/modules/{self.module_id}/inputs/{self.input_name}")'


_UPSTREAM: Final = Endpoint("upstream")


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


UNDEFINED: Final[Any] = _Sentinel("undefined")
"""The value of an expression that has no value (a missing property, ``1 % 0``, ``undefined`` ...)."""

NULL: Final[Any] = _Sentinel("null")
"""The ``null`` literal, and a JSON ``null`` selected by a ``$body`` query."""

_MISSING_PATH: Final[Any] = _Sentinel("null")  # a $body path that selects nothing: null, but not a JSON null
_NULL_STRING: Final[Any] = _Sentinel("null")  # a property whose value is null, seen as a $body-style value
_ABSENT: Final[Any] = _Sentinel("absent")  # internal: "no such key"
_BAD_BODY: Final[Any] = _Sentinel("bad body")  # internal: the body is not a usable JSON object
_NOT_LOADED: Final[Any] = _Sentinel("not loaded")


# ====================================================================== evaluation context


class _Ctx:
    """One message being evaluated; caches what several routes may need."""

    __slots__ = ("_app_lower", "_json", "_sys_lower", "app", "body", "sys")

    def __init__(self, message: RoutableMessage) -> None:
        self.app = message.app_properties
        self.sys = message.system_properties
        self.body = message.body
        self._app_lower: dict[str, Any] | None = None
        self._sys_lower: dict[str, Any] | None = None
        self._json: Any = _NOT_LOADED

    def app_get(self, key: str, key_lower: str, default: Any) -> Any:
        value = self.app.get(key, _ABSENT)
        if value is _ABSENT:
            lower = self._app_lower
            if lower is None:
                lower = self._app_lower = {k.lower(): v for k, v in self.app.items()}
            value = lower.get(key_lower, default)
        return value

    def sys_get(self, key: str, key_lower: str, default: Any) -> Any:
        value = self.sys.get(key, _ABSENT)
        if value is _ABSENT:
            lower = self._sys_lower
            if lower is None:
                lower = self._sys_lower = {k.lower(): v for k, v in self.sys.items()}
            value = lower.get(key_lower, default)
        return value

    def json_root(self) -> Any:
        root = self._json
        if root is _NOT_LOADED:
            root = self._json = _load_json_body(
                self.sys_get("contentType", "contenttype", None),
                self.sys_get("contentEncoding", "contentencoding", None),
                self.body,
            )
        return root


_ENCODINGS: Final = {"utf-8": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}


def _load_json_body(content_type: Any, content_encoding: Any, body: bytes) -> Any:
    if not isinstance(content_encoding, str) or not isinstance(content_type, str):
        return _BAD_BODY
    codec = _ENCODINGS.get(content_encoding.lower())
    if codec is None or content_type.lower() != "application/json":
        return _BAD_BODY
    try:
        root = json.loads(bytes(body).decode(codec, errors="replace").lstrip("\ufeff"))
    except ValueError:
        return _BAD_BODY
    return root if isinstance(root, dict) else _BAD_BODY
