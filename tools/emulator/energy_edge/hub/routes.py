"""edgeHub routes: the route grammar, its compiler and the per-message evaluator.

A route reads ``[SELECT *] FROM <source> [WHERE <condition>] INTO <sink>``. The behaviour follows the
edgeHub routing engine (Azure/iotedge, ``Microsoft.Azure.Devices.Routing.Core``) rather than the IoT Hub
cloud query language, including its less obvious corners:

* Tokens are cut by longest match exactly as the official lexer does, so ``a-b`` is one property name
  and ``3 -1`` is two numbers side by side (a syntax error); write ``3 - 1``. ``true``/``false``/``null``/
  ``undefined`` are lower-case only, while keywords and function names ignore case.
* Conditions are statically typed. Application and system properties are strings, literals have their
  own types and ``$body`` queries are dynamic. Operands or arguments of the wrong static type (say
  ``temperature > 30`` on a string property, or ``abs('x')``) make the route invalid, as edgeHub rejects
  such a deployment; use ``as_number(temperature) > 30``. At run time nothing raises: a missing
  property, a value of the wrong dynamic type or an out-of-range argument gives ``undefined``.
* ``undefined`` propagates through comparisons, arithmetic and functions; ``AND``/``OR`` are three-valued;
  a route fires only when its condition is exactly ``true``.
* ``$name`` is the application property called ``$name`` when there is one, else the system property
  ``name``; ``{$name}`` always means the system property. ``$body.<path>`` queries the JSON body when the
  message says ``contentType: application/json`` and ``contentEncoding`` utf-8, utf-16 or utf-32; otherwise
  it is ``undefined``. A path that selects nothing is ``null``; objects, arrays and strings the official
  JSON reader takes for dates are ``undefined``. Comparing ``$body`` values of different JSON types does not
  convert them: they are ordered bool < number < string < null.

Parsing and compiling happen once, when a route table is loaded; every condition becomes a tree of small
closures. Evaluating a message touches only those closures, and parses a JSON body at most once per
:meth:`RouteTable.evaluate` call, and only if some matching route asks for ``$body``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from lark import Token, Tree

from energy_edge.hub.routing.compiler import _Compiler
from energy_edge.hub.routing.lexer import _CompileError, _parse
from energy_edge.hub.routing.types import (
    _ABSENT,
    _MAX_TTL,
    _MISSING_PATH,
    _NULL_STRING,
    _UPSTREAM,
    DEFAULT_PRIORITY,
    NULL,
    UNDEFINED,
    Endpoint,
    RoutableMessage,
    RouteError,
    _Ctx,
)
from energy_edge.hub.routing.values import _U, _as_condition, _constant, _Fn, _Node

__all__ = [
    "DEFAULT_PRIORITY",
    "NULL",
    "UNDEFINED",
    "CompiledCondition",
    "Endpoint",
    "RoutableMessage",
    "Route",
    "RouteError",
    "RouteTable",
    "compile_condition",
    "parse_route",
]

# ====================================================================== routes


def _source_prefix(path: str) -> str:
    """How edgeHub normalizes a route source: trailing '*' and '/' dropped, one '/' added, no case."""
    path = path.strip().rstrip("*")
    if len(path) > 1:
        path = path.rstrip("/")
    return path.strip().rstrip("/").lower() + "/"


def _message_key(source: str) -> str:
    return source.strip().rstrip("/").lower() + "/"


def _always_true(_c: Any) -> Any:
    return True


@dataclass(frozen=True)
class CompiledCondition:
    """A route condition on its own (mostly for tests and diagnostics)."""

    text: str
    value_type: str  # "string", "number", "bool", "null", "undefined" or "$body value"
    _value: _Fn = field(repr=False, compare=False)
    _test: _Fn = field(repr=False, compare=False)

    def value(self, message: RoutableMessage) -> Any:
        """The raw value: str, float, bool, None (a null property), :data:`NULL` or :data:`UNDEFINED`."""
        v = self._value(_Ctx(message))
        if v is _MISSING_PATH:
            return NULL
        if v is _NULL_STRING:
            return None
        return v

    def evaluate(self, message: RoutableMessage) -> bool | None:
        """True, False, or None for undefined."""
        v = self._test(_Ctx(message))
        return None if v is UNDEFINED else bool(v)


def _compile_tree(tree: Any, source_prefix: str) -> tuple[_Node, _Node]:
    if tree is None:
        node = _constant(_U, UNDEFINED)
    else:
        node = _Compiler(source_prefix).compile(tree)
    return node, _as_condition(node)


def compile_condition(condition: str, *, source: str = "/messages", name: str = "condition") -> CompiledCondition:
    """Compile a WHERE condition as a route FROM ``source`` would; raises :class:`RouteError`."""
    try:
        tree = _parse(condition, "condition")
        node, test = _compile_tree(tree.children[0], _source_prefix(source))
    except _CompileError as exc:
        raise _route_error(name, exc) from None
    return CompiledCondition(condition, node.ty.value, node.fn, test.fn)


def _route_error(name: str, exc: _CompileError) -> RouteError:
    token = exc.token
    if token is None:
        return RouteError(name, exc.reason)
    return RouteError(name, exc.reason, token.line, token.column)


@dataclass(frozen=True)
class Route:
    """One compiled route. Build it with :func:`parse_route`.

    ``source`` is the FROM path as written, ``condition`` the WHERE text (``"true"`` without one),
    ``priority`` 0-9 or :data:`DEFAULT_PRIORITY` (lower is more urgent), ``ttl_secs`` 0 for "the global
    store-and-forward TTL".
    """

    name: str
    text: str
    source: str
    endpoint: Endpoint
    priority: int = DEFAULT_PRIORITY
    ttl_secs: int = 0
    condition: str = "true"
    compiled: InitVar[Callable[[Any], Any] | None] = None
    _prefix: str = field(init=False, repr=False, compare=False)
    _test: _Fn = field(init=False, repr=False, compare=False)

    def __post_init__(self, compiled: Callable[[Any], Any] | None) -> None:
        prefix = _source_prefix(self.source)
        object.__setattr__(self, "_prefix", prefix)
        if compiled is None:
            compiled = compile_condition(self.condition, source=self.source, name=self.name)._test
        object.__setattr__(self, "_test", compiled)

    def matches(self, message: RoutableMessage) -> bool:
        """Whether this route takes the message: the source matches and the condition is exactly true."""
        return _message_key(message.source).startswith(self._prefix) and self._test(_Ctx(message)) is True

    def evaluate_condition(self, message: RoutableMessage) -> bool | None:
        """The condition alone: True, False or None (undefined), whatever the message source."""
        v = self._test(_Ctx(message))
        return None if v is UNDEFINED else bool(v)


def _spec_value(spec: Mapping[str, Any], key: str) -> Any:
    if key in spec:
        return spec[key]
    for k, v in spec.items():  # the official JSON reader matches property names without case
        if isinstance(k, str) and k.lower() == key.lower():
            return v
    return _ABSENT


def _unsigned(name: str, what: str, value: Any) -> int:
    if isinstance(value, bool):
        raise RouteError(name, f"{what} must be an unsigned integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 0 <= value <= _MAX_TTL:
        raise RouteError(name, f"{what} must be an unsigned integer, got {value!r}")
    return value


def _endpoint(sink: Tree[Token]) -> Endpoint:
    if sink.data == "system_sink":
        token: Token = sink.children[0]  # type: ignore[assignment]
        if str(token).lower() == "$upstream":
            return _UPSTREAM
        raise _CompileError(f"unsupported system endpoint {str(token)!r} (only $upstream exists)", token)
    function: Token = sink.children[0]  # type: ignore[assignment]
    argument: Token = sink.children[2]  # type: ignore[assignment]
    if str(function).lower() != "brokeredendpoint":
        raise _CompileError(f"unsupported endpoint function {str(function)!r} (only BrokeredEndpoint)", function)
    address = str(argument)[1:-1].strip()  # taken verbatim: no escapes are processed here
    if address.startswith("/"):
        address = address[1:]
    if address.endswith("/"):
        address = address[:-1]
    parts = address.split("/")
    if not address or len(parts) != 4:
        raise _CompileError(
            f"BrokeredEndpoint address {argument!s} must read \"/modules/{{module}}/inputs/{{input}}\"",
            argument,
        )
    return Endpoint("module_input", parts[1], parts[3])


def parse_route(name: str, spec: str | Mapping[str, Any]) -> Route:
    """Parse and compile one manifest route: a string, or ``{"route", "priority", "timeToLiveSecs"}``."""
    priority, ttl = DEFAULT_PRIORITY, 0
    if isinstance(spec, str):
        text = spec
    elif isinstance(spec, Mapping):
        text = _spec_value(spec, "route")
        if not isinstance(text, str):
            raise RouteError(name, "a route object needs a \"route\" string")
        raw_priority = _spec_value(spec, "priority")
        if raw_priority is not _ABSENT:
            priority = _unsigned(name, "priority", raw_priority)
            if priority > 9 and priority != DEFAULT_PRIORITY:
                raise RouteError(name, f"priority must be between 0 and 9, got {priority}")
        raw_ttl = _spec_value(spec, "timeToLiveSecs")
        if raw_ttl is not _ABSENT:
            ttl = _unsigned(name, "timeToLiveSecs", raw_ttl)
    else:
        raise RouteError(name, f"a route must be a string or an object, not {type(spec).__name__}")
    if not text.strip():
        raise RouteError(name, "the route is empty")
    try:
        tree = _parse(text, "route")
        _select, _star, _from, path, _where, where_expr, _into, sink = tree.children
        assert isinstance(path, Tree) and isinstance(sink, Tree)
        source = "".join(str(t) for t in path.children)
        endpoint = _endpoint(sink)
        if where_expr is None:
            condition, test = "true", _always_true
        else:
            assert isinstance(where_expr, Tree)
            condition = text[where_expr.meta.start_pos:where_expr.meta.end_pos]
            test = _compile_tree(where_expr, _source_prefix(source))[1].fn
    except _CompileError as exc:
        raise _route_error(name, exc) from None
    return Route(name, text, source, endpoint, priority, ttl, condition, test)


@dataclass(frozen=True)
class RouteTable:
    """The routes of one deployment, in manifest order."""

    routes: tuple[Route, ...] = ()

    @classmethod
    def from_manifest(cls, routes: Mapping[str, str | Mapping[str, Any]]) -> RouteTable:
        """Compile ``$edgeHub.properties.desired.routes``; the first bad route raises :class:`RouteError`."""
        compiled = []
        for name, spec in routes.items():
            if not isinstance(name, str) or not name.strip():
                raise RouteError(str(name), "a route needs a non-empty name")
            compiled.append(parse_route(name, spec))
        return cls(tuple(compiled))

    def evaluate(self, message: RoutableMessage) -> list[tuple[Endpoint, Route]]:
        """The endpoints that take ``message``, each once, with the most urgent (lowest priority number)
        matching route; ties go to the earlier route. Endpoints come in order of their first match."""
        key = _message_key(message.source)
        ctx = _Ctx(message)
        chosen: dict[Endpoint, Route] = {}
        for route in self.routes:
            if key.startswith(route._prefix) and route._test(ctx) is True:
                current = chosen.get(route.endpoint)
                if current is None or route.priority < current.priority:
                    chosen[route.endpoint] = route
        return list(chosen.items())

