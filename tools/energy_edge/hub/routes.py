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

import calendar
import json
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from enum import Enum
from importlib import resources
from typing import Any, Final

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

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


# ====================================================================== lexer

# Token rules in the official lexer's order: on equal length the earlier rule wins. '{' and '}' are
# implicit parser literals, which ANTLR places before every named rule.
_QUERY_PATH_CHARS = r"""[^()<>@,;:\\"/?={} \t\n\r]"""
_ID_CHARS = r"""[^()<>@,;:\\"/\[\]?={} \t\n\r]"""
_ESCAPE = r"""\\(?:["'\\]|u[0-9A-Fa-f]{4})"""


def _anycase(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


_TOKEN_RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("LBRACE", r"\{"),
        ("RBRACE", r"\}"),
        ("SELECT", _anycase("select")),
        ("FROM", _anycase("from")),
        ("WHERE", _anycase("where")),
        ("INTO", _anycase("into")),
        ("STRING", rf""""(?:{_ESCAPE}|[^"\\])*"|'(?:{_ESCAPE}|[^'\\])*'"""),
        ("UNTERMINATED_STRING", rf""""(?:{_ESCAPE}|[^"\\])*|'(?:{_ESCAPE}|[^'\\])*"""),
        ("INTEGER", r"-?[0-9]+"),
        ("HEX", r"0[Xx][0-9a-fA-F]+"),
        ("REAL", r"-?[0-9]*\.[0-9]+(?:[Ee][+-]?[0-9]+)?|-?[0-9]*[Ee][+-]?[0-9]+"),
        ("TRUE", r"true"),
        ("FALSE", r"false"),
        ("NULL", r"null"),
        ("UNDEFINED", r"undefined"),
        ("LPAR", r"\("),
        ("RPAR", r"\)"),
        ("COMMA", r","),
        ("PLUS", r"\+"),
        ("MINUS", r"-"),
        ("STAR", r"\*"),
        ("SLASH", r"/"),
        ("PERCENT", r"%"),
        ("AND", _anycase("and")),
        ("OR", _anycase("or")),
        ("NOT", _anycase("not")),
        ("EQ", r"="),
        ("NE", r"!="),
        ("LTGT", r"<>"),
        ("LE", r"<="),
        ("GE", r">="),
        ("GT", r">"),
        ("LT", r"<"),
        ("CONCAT", r"\|\|"),
        ("COALESCE", r"\?\?"),
        ("SYS_PROP", rf"\${_QUERY_PATH_CHARS}+"),
        ("ID", rf"{_ID_CHARS}+"),
        ("QUERY_PATH", rf"{_QUERY_PATH_CHARS}+"),
        ("WS", r"[ \t\r\n]+"),
        ("COMMENT", r"/\*[\s\S]*?\*/"),
        ("UNKNOWN_CHAR", r"[\s\S]"),
    )
)
_SKIPPED: Final = frozenset({"WS", "COMMENT"})


def _tokenize(text: str) -> Iterator[Token]:
    """Longest match over all rules, ties to the earlier rule: what the ANTLR lexer does."""
    pos, end = 0, len(text)
    line, line_start = 1, 0
    while pos < end:
        best, stop = "", pos
        for name, rx in _TOKEN_RULES:  # the last rule matches any character, so something always wins
            m = rx.match(text, pos)
            if m is not None and m.end() > stop:
                best, stop = name, m.end()
        value = text[pos:stop]
        newlines = value.count("\n")
        end_line = line + newlines
        end_line_start = line_start if not newlines else pos + value.rindex("\n") + 1
        if best not in _SKIPPED:
            yield Token(
                best, value, start_pos=pos, line=line, column=pos - line_start + 1,
                end_line=end_line, end_column=stop - end_line_start + 1, end_pos=stop,
            )
        pos, line, line_start = stop, end_line, end_line_start


class _LarkLexer(Lexer):
    """Feeds :func:`_tokenize` to lark's LALR parser."""

    __future_interface__ = 2

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Token]:
        text = lexer_state.text
        return _tokenize(text if isinstance(text, str) else text.text)


def _load_parser() -> Lark:
    grammar = resources.files("energy_edge.hub").joinpath("route_grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer=_LarkLexer,
        start=["route", "condition"],
        propagate_positions=True,
        maybe_placeholders=True,
    )


_PARSER: Final = _load_parser()

_TOKEN_DESCRIPTIONS: Final = {
    "SELECT": "SELECT", "FROM": "FROM", "WHERE": "WHERE", "INTO": "INTO", "STAR": "'*'", "SLASH": "'/'",
    "ID": "a name", "SYS_PROP": "a $name", "STRING": "a quoted string", "LPAR": "'('", "RPAR": "')'",
    "RBRACE": "'}'", "COMMA": "','", "$END": "the end",
}


class _CompileError(Exception):
    def __init__(self, reason: str, token: Token | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token = token


def _parse(text: str, start: str) -> Tree[Token]:
    try:
        return _PARSER.parse(text, start=start)
    except UnexpectedToken as exc:
        token = exc.token
        if token.type == "$END":
            lines = text.split("\n")
            token = Token("$END", "", 0, len(lines), len(lines[-1]) + 1)
            reason = f"unexpected end of {start}"
        elif token.type == "UNKNOWN_CHAR":
            reason = f"invalid symbol {token.value!r}"
        elif token.type == "UNTERMINATED_STRING":
            reason = "unterminated string"
        else:
            reason = f"unexpected token {token.value!r}"
        expected = sorted(exc.expected)
        if 0 < len(expected) <= 3 and all(e in _TOKEN_DESCRIPTIONS for e in expected):
            reason += " (expected " + " or ".join(_TOKEN_DESCRIPTIONS[e] for e in expected) + ")"
        raise _CompileError(reason, token) from None
    except UnexpectedInput as exc:  # pragma: no cover - the custom lexer leaves only UnexpectedToken
        raise _CompileError("syntax error", Token("ERROR", "", 0, exc.line, exc.column)) from None


# ====================================================================== static types and value helpers


class _Ty(Enum):
    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    NULL = "null"
    UNDEFINED = "undefined"
    QUERY = "$body value"


_S, _D, _B, _N, _U, _Q = _Ty.STRING, _Ty.NUMBER, _Ty.BOOL, _Ty.NULL, _Ty.UNDEFINED, _Ty.QUERY
_QUERY_COMPATIBLE: Final = frozenset({_N, _D, _S, _B})

# Runtime representation, by static type:
#   STRING     str, None (a property whose value is null) or UNDEFINED
#   NUMBER     float; NaN is undefined
#   BOOL       True, False or UNDEFINED
#   NULL       NULL
#   UNDEFINED  UNDEFINED
#   QUERY      UNDEFINED, bool, float (never NaN), str, NULL, _MISSING_PATH or _NULL_STRING
_Fn = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Node:
    ty: _Ty
    fn: _Fn
    const: bool = False


def _constant(ty: _Ty, value: Any) -> _Node:
    return _Node(ty, lambda _c: value, True)


def _derive(ty: _Ty, fn: _Fn, *inputs: _Node) -> _Node:
    """A node computed from ``inputs``; folded to a constant when they all are (every operator is pure)."""
    if all(n.const for n in inputs):
        return _constant(ty, fn(None))
    return _Node(ty, fn)


def _matches(expected: _Ty, given: _Ty, query_ok: bool) -> bool:
    if expected is given:
        return True
    return query_ok and (
        (given is _Q and expected in _QUERY_COMPATIBLE) or (expected is _Q and given in _QUERY_COMPATIBLE)
    )


def _q_from_string(v: Any) -> Any:
    return _NULL_STRING if v is None else v


def _q_from_number(v: float) -> Any:
    return v if v == v else UNDEFINED


def _identity(v: Any) -> Any:
    return v


def _q_from_null(_v: Any) -> Any:
    return NULL


def _q_from_undefined(_v: Any) -> Any:
    return UNDEFINED


_TO_QUERY: Final[dict[_Ty, Callable[[Any], Any]]] = {
    _S: _q_from_string, _D: _q_from_number, _B: _identity, _N: _q_from_null, _U: _q_from_undefined,
}


def _as_query(node: _Node) -> _Node:
    if node.ty is _Q:
        return node
    convert, f = _TO_QUERY[node.ty], node.fn
    return _derive(_Q, lambda c: convert(f(c)), node)


def _bool_of_query(v: Any) -> Any:
    return v if v is True or v is False else UNDEFINED


def _as_condition(node: _Node) -> _Node:
    """The final conversion of a condition to true / false / undefined."""
    if node.ty is _B:
        return node
    if node.ty is _N:
        return _constant(_B, False)
    if node.ty is _Q:
        f = node.fn
        return _derive(_B, lambda c: _bool_of_query(f(c)), node)
    return _constant(_B, UNDEFINED)


def _div(a: float, b: float) -> float:
    if b == 0.0:
        if a == 0.0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _mod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except ValueError:
        return math.nan


def _pow(x: float, y: float) -> float:
    try:
        return math.pow(x, y)
    except OverflowError:
        negative = x < 0 and y == math.floor(y) and math.fmod(y, 2.0) != 0.0
        return -math.inf if negative else math.inf
    except ValueError:
        if x == 0.0 and y < 0:
            odd = y == math.floor(y) and math.fmod(y, 2.0) != 0.0
            return -math.inf if odd and math.copysign(1.0, x) < 0 else math.inf
        return math.nan


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _ceiling(x: float) -> float:
    return float(math.ceil(x)) if math.isfinite(x) else x


def _floor(x: float) -> float:
    return float(math.floor(x)) if math.isfinite(x) else x


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0.0 else math.nan


def _sign(x: float) -> float:
    return float((x > 0.0) - (x < 0.0)) if x == x else math.nan


_DOTNET_NUMBER = re.compile(
    r"[\t-\r ]*(?:(?P<paren>\()|(?P<lead>[+-]))?"
    r"(?P<int>[0-9][0-9,]*)?(?:\.(?P<frac>[0-9]*))?(?:[Ee](?P<exp>[+-]?[0-9]+))?"
    r"(?P<trail>[+-])?(?P<close>\))?[\t-\r ]*"
)
_DOTNET_SPECIAL = re.compile(r"[\t-\r ]*(?P<sign>[+-]?)(?P<word>infinity|nan|\u221e)[\t-\r ]*", re.IGNORECASE)


def _parse_number(text: str) -> float:
    """``double.TryParse(text, NumberStyles.Any, InvariantCulture)``, give or take; NaN when it fails."""
    m = _DOTNET_NUMBER.fullmatch(text)
    if m is None:
        s = _DOTNET_SPECIAL.fullmatch(text)
        if s is None:
            return math.nan
        if s["word"].lower() == "nan":
            return math.nan
        return -math.inf if s["sign"] == "-" else math.inf
    digits, frac = (m["int"] or "").replace(",", ""), m["frac"] or ""
    if not digits and not frac:
        return math.nan
    if bool(m["paren"]) != bool(m["close"]) or (m["paren"] and m["trail"]) or (m["lead"] and m["trail"]):
        return math.nan
    negative = bool(m["paren"]) or m["lead"] == "-" or m["trail"] == "-"
    value = float(f"{digits or '0'}.{frac or '0'}e{m['exp'] or '0'}")
    return -value if negative else value


def _hex_value(text: str) -> float:
    digits = text[2:].lstrip("0")
    if len(digits) > 16:
        return math.nan  # long.TryParse overflows: the literal is undefined
    value = int(digits or "0", 16)
    return float(value - 2**64 if value >= 2**63 else value)


_UNICODE_ESCAPE = re.compile(r"\\[Uu]([0-9A-Fa-f]{4})")
_QUOTE_ESCAPE = re.compile(r"""\\(["'\\])""")


def _unescape(text: str) -> str:
    # Two passes in this order, as the official compiler does (so "\\u0041" yields "\A").
    text = _UNICODE_ESCAPE.sub(lambda m: chr(int(m[1], 16)), text)
    return _QUOTE_ESCAPE.sub(lambda m: m[1], text)


# ====================================================================== $body queries


_JSON_PATH_INT = re.compile(r"[0-9]+")
_JSON_PATH_ID = re.compile(r"""[^()<>@,;:\\"/\[\]?={}.\t\n\r]+""")
_JSON_PATH_SKIP = re.compile(r"[\t\n\r]+")


def _json_path_error(path: str) -> str | None:
    """Check ``path`` against JsonPath.g4: ``name([N])?(.name([N])?)*``. Like the official validator, it
    stops at the first token that does not continue the path, leaving the rest to the evaluator."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(path):
        m_int, m_id = _JSON_PATH_INT.match(path, pos), _JSON_PATH_ID.match(path, pos)
        int_end = m_int.end() if m_int else pos
        id_end = m_id.end() if m_id else pos
        if max(int_end, id_end) > pos:
            kind, stop = ("INT", int_end) if int_end >= id_end else ("ID", id_end)
            tokens.append((kind, path[pos:stop]))
            pos = stop
        elif path[pos] in ".[]":
            tokens.append((path[pos], path[pos]))
            pos += 1
        else:  # whitespace is skipped; other characters the official lexer drops with a console warning
            skip = _JSON_PATH_SKIP.match(path, pos)
            pos = skip.end() if skip else pos + 1
    tokens.append(("$END", ""))
    i = 0

    def expect(kind: str) -> str | None:
        nonlocal i
        if tokens[i][0] != kind:
            got = tokens[i][1] or "end of path"
            return f"expected {'a name' if kind == 'ID' else repr(kind) if kind != 'INT' else 'an index'}, got {got!r}"
        i += 1
        return None

    while True:
        error = expect("ID")
        if error:
            return error
        if tokens[i][0] == "[":
            i += 1
            error = expect("INT") or expect("]")
            if error:
                return error
        if tokens[i][0] != ".":
            return None
        i += 1


_PATH_HEAD = re.compile(r"[^.\[\]]+")
_PATH_STEP = re.compile(r"\.(?P<name>[^.\[\]]+)|\[(?P<index>[0-9]+)\]|\['(?P<quoted>[^']*)'\]")


def _json_path_steps(path: str) -> tuple[str | int, ...] | None:
    """The steps of a simple JSONPath (names, ``[N]``, ``['name']``); None for anything else, which the
    official JSONPath engine would reject or expand to several values, i.e. undefined either way."""
    head = _PATH_HEAD.match(path)
    if head is None:
        return None
    steps: list[str | int] = [head[0]]
    pos = head.end()
    while pos < len(path):
        m = _PATH_STEP.match(path, pos)
        if m is None:
            return None
        if m["index"] is not None:
            steps.append(int(m["index"]))
        else:
            steps.append(m["name"] if m["name"] is not None else m["quoted"])
        pos = m.end()
    return tuple(steps)


def _select(root: Any, steps: tuple[str | int, ...]) -> Any:
    node = root
    for step in steps:
        if isinstance(step, int):
            if node.__class__ is not list or step >= len(node):
                return _MISSING_PATH
            node = node[step]
        else:
            if node.__class__ is not dict:
                return _MISSING_PATH
            node = node.get(step, _ABSENT)
            if node is _ABSENT:
                return _MISSING_PATH
    return node


_ISO_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
_MS_DATE = re.compile(r"/Date\(-?[0-9]+(?:[+-][0-9]{4})?\)/")


def _looks_like_date(s: str) -> bool:
    """Would Json.NET's default reader turn this JSON string into a date (which routing then cannot use)?"""
    if s.startswith("/Date("):
        return _MS_DATE.fullmatch(s) is not None
    if not 19 <= len(s) <= 40 or s[10:11] != "T":
        return False
    m = _ISO_DATE.fullmatch(s)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    return (
        year >= 1 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
        and hour < 24 and minute < 60 and second < 60
    )


def _query_value(node: Any) -> Any:
    """A selected JSON node as a query value: only leaves are usable."""
    cls = node.__class__
    if cls is str:
        return UNDEFINED if _looks_like_date(node) else node
    if cls is float:
        return node if node == node else UNDEFINED
    if cls is bool:
        return node
    if cls is int:
        try:
            return float(node)
        except OverflowError:
            return math.inf if node > 0 else -math.inf
    if node is None:
        return NULL
    if node is _MISSING_PATH:
        return node
    return UNDEFINED  # an object or an array


# ====================================================================== comparison and logic


_COMPARE_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "EQ": operator.eq, "NE": operator.ne, "LTGT": operator.ne,
    "LT": operator.lt, "LE": operator.le, "GT": operator.gt, "GE": operator.ge,
}


def _query_rank(v: Any) -> int:
    cls = v.__class__
    if cls is bool:
        return 1
    if cls is float:
        return 2
    if cls is str or v is _NULL_STRING:
        return 3
    return 4  # NULL, _MISSING_PATH


def _query_order(a: Any, b: Any) -> int:
    """-1 / 0 / 1 ordering of two defined query values; different JSON types order by type."""
    ra, rb = _query_rank(a), _query_rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 3:
        a = None if a is _NULL_STRING else a
        b = None if b is _NULL_STRING else b
        if a is None or b is None:
            return (a is not None) - (b is not None)
    elif ra == 4:
        return 0
    return (a > b) - (a < b)


def _and3(a: Any, b: Any) -> Any:
    if a is UNDEFINED:
        return False if b is False else UNDEFINED
    if b is UNDEFINED:
        return False if a is False else UNDEFINED
    return a and b


def _or3(a: Any, b: Any) -> Any:
    if a is UNDEFINED:
        return True if b is True else UNDEFINED
    if b is UNDEFINED:
        return True if a is True else UNDEFINED
    return a or b


# ====================================================================== built-in functions


@dataclass(frozen=True)
class _Executor:
    """One signature of a built-in: argument types, whether $body values are accepted (every argument is
    then converted to a query value first) and the implementation."""

    params: tuple[_Ty, ...] | None  # None: any one argument
    query_ok: bool
    result: _Ty
    impl: Callable[..., Any]
    variadic: bool = False

    def accepts(self, given: Sequence[_Ty]) -> bool:
        if self.params is None:
            return len(given) == 1
        if self.variadic:  # the last parameter type repeats; at least the others must be there
            fixed = len(self.params) - 1
            return len(given) >= fixed and all(
                g is self.params[min(i, fixed)] or (self.query_ok and g is _Q) for i, g in enumerate(given)
            )
        return len(given) == len(self.params) and all(
            _matches(t, g, self.query_ok) for t, g in zip(self.params, given, strict=True)
        )


def _math1(f: Callable[[float], float]) -> Callable[[Any], float]:
    def run(x: Any) -> float:
        return f(x) if x.__class__ is float else math.nan

    return run


def _power(x: Any, y: Any) -> float:
    return _pow(x, y) if x.__class__ is float and y.__class__ is float else math.nan


def _as_number(v: Any) -> float:
    if v.__class__ is float:
        return float(v)
    if v.__class__ is str:
        return _parse_number(v)
    return math.nan


def _is_bool(v: Any) -> Any:
    return UNDEFINED if v is UNDEFINED else v.__class__ is bool


def _is_null_query(v: Any) -> Any:
    # Official behaviour, faithfully: a selected JSON value of any kind counts, only a path that selects
    # nothing does not (the engine compares against its "no match" instance, not against JSON null).
    return UNDEFINED if v is UNDEFINED else v is not _MISSING_PATH


def _is_number(v: Any) -> bool:
    return v.__class__ is float and math.isfinite(v)


def _is_string(v: Any) -> bool:
    return v.__class__ is str


def _concat(*parts: Any) -> Any:
    for p in parts:
        if p.__class__ is not str and p is not _NULL_STRING:
            return UNDEFINED
    return "".join("" if p is _NULL_STRING else p for p in parts)


def _string1(f: Callable[[str], Any], undefined: Any) -> Callable[[Any], Any]:
    def run(s: Any) -> Any:
        return f(s) if s.__class__ is str else undefined

    return run


def _string2(f: Callable[[str, str], Any], undefined: Any) -> Callable[[Any, Any], Any]:
    def run(s: Any, t: Any) -> Any:
        return f(s, t) if s.__class__ is str and t.__class__ is str else undefined

    return run


def _substring(s: Any, start: Any, length: Any = None) -> Any:
    if s.__class__ is not str or start.__class__ is not float:
        return UNDEFINED
    if length is None:
        if 0 <= start <= len(s):
            return s[int(start):]
        return UNDEFINED
    if length.__class__ is not float:
        return UNDEFINED
    if 0 <= start < len(s) and 0 <= length <= len(s) - start:
        first = int(start)
        return s[first:first + int(length)]
    return UNDEFINED


def _const_impl(value: Any) -> Callable[..., Any]:
    return lambda *_args: value


def _is_defined_string(v: Any) -> bool:
    return v is not UNDEFINED


def _is_defined_number(v: float) -> bool:
    return v == v


_NAN = math.nan
_BUILTINS: Final[dict[str, tuple[_Executor, ...]]] = {
    "abs": (_Executor((_D,), True, _D, _math1(abs)),),
    "exp": (_Executor((_D,), True, _D, _math1(_exp)),),
    "power": (_Executor((_D, _D), True, _D, _power),),
    "square": (_Executor((_D,), True, _D, _math1(lambda x: _pow(x, 2.0))),),
    "ceiling": (_Executor((_D,), True, _D, _math1(_ceiling)),),
    "floor": (_Executor((_D,), True, _D, _math1(_floor)),),
    "sign": (_Executor((_D,), True, _D, _math1(_sign)),),
    "sqrt": (_Executor((_D,), True, _D, _math1(_sqrt)),),
    "as_number": (
        _Executor((_S,), True, _D, _as_number),
        _Executor((_D,), False, _D, _identity),
    ),
    "is_bool": (
        _Executor((_B,), True, _B, _is_bool),
        _Executor(None, False, _B, _const_impl(False)),
    ),
    "is_defined": (
        _Executor((_S,), False, _B, _is_defined_string),
        _Executor((_D,), False, _B, _is_defined_number),
        _Executor((_B,), False, _B, _is_defined_string),
        _Executor((_U,), False, _B, _const_impl(False)),
        _Executor((_N,), False, _B, _const_impl(True)),
        _Executor((_Q,), False, _B, _is_defined_string),
    ),
    "is_null": (
        _Executor((_S,), False, _B, lambda v: v is None),
        _Executor((_Q,), False, _B, _is_null_query),
        _Executor((_N,), False, _B, _const_impl(True)),
        _Executor(None, False, _B, _const_impl(False)),
    ),
    "is_number": (
        _Executor((_D,), True, _B, _is_number),
        _Executor(None, False, _B, _const_impl(False)),
    ),
    "is_string": (
        _Executor((_S,), True, _B, _is_string),
        _Executor(None, False, _B, _const_impl(False)),
    ),
    "concat": (_Executor((_S, _S, _S), True, _S, _concat, variadic=True),),
    "length": (_Executor((_S,), True, _D, _string1(lambda s: float(len(s)), _NAN)),),
    "lower": (_Executor((_S,), True, _S, _string1(str.lower, UNDEFINED)),),
    "upper": (_Executor((_S,), True, _S, _string1(str.upper, UNDEFINED)),),
    "substring": (
        _Executor((_S, _D), True, _S, _substring),
        _Executor((_S, _D, _D), True, _S, _substring),
    ),
    "index_of": (_Executor((_S, _S), True, _D, _string2(lambda s, t: float(s.find(t)), _NAN)),),
    "starts_with": (_Executor((_S, _S), True, _B, _string2(str.startswith, UNDEFINED)),),
    "ends_with": (_Executor((_S, _S), True, _B, _string2(str.endswith, UNDEFINED)),),
    "contains": (_Executor((_S, _S), True, _B, _string2(operator.contains, UNDEFINED)),),
}
_TWIN_CHANGE_INCLUDES: Final = "twin_change_includes"
_TWIN_CHANGE_PREFIXES: Final = ("properties.reported.", "properties.desired.", "tags.")
_TWIN_CHANGE_SOURCE: Final = "/twinchangenotifications/"


# ====================================================================== the condition compiler


class _Compiler:
    """Turns a parsed condition into a typed closure tree; raises _CompileError with the culprit token."""

    def __init__(self, source_prefix: str) -> None:
        self.source_prefix = source_prefix

    def compile(self, tree: Tree[Token]) -> _Node:
        method: Callable[[Tree[Token]], _Node] = getattr(self, "_" + str(tree.data))
        return method(tree)

    # ------------------------------------------------------------------ leaves

    def _paren(self, tree: Tree[Token]) -> _Node:
        return self.compile(tree.children[1])  # type: ignore[arg-type]

    def _literal(self, tree: Tree[Token]) -> _Node:
        token: Token = tree.children[0]  # type: ignore[assignment]
        kind, text = token.type, str(token)
        if kind == "TRUE":
            return _constant(_B, True)
        if kind == "FALSE":
            return _constant(_B, False)
        if kind == "NULL":
            return _constant(_N, NULL)
        if kind == "UNDEFINED":
            return _constant(_U, UNDEFINED)
        if kind == "STRING":
            return _constant(_S, _unescape(text[1:-1]))
        if kind == "HEX":
            return _constant(_D, _hex_value(text))
        return _constant(_D, float(text))  # INTEGER, REAL; too large -> infinity, as .NET does

    def _app_prop(self, tree: Tree[Token]) -> _Node:
        name = str(tree.children[0])
        lower = name.lower()
        return _Node(_S, lambda c: c.app_get(name, lower, UNDEFINED))

    def _system_property(self, name: str) -> _Node:
        if "[" in name or "]" in name:
            return _constant(_U, UNDEFINED)
        lower = name.lower()
        return _Node(_S, lambda c: c.sys_get(name, lower, UNDEFINED))

    def _sys_prop(self, tree: Tree[Token]) -> _Node:
        token: Token = tree.children[0]  # type: ignore[assignment]
        text = str(token)
        body = self._body_query(token) if text[:6].lower() == "$body." else None
        if "[" in text or "]" in text:
            return body if body is not None else _constant(_U, UNDEFINED)
        lower = text.lower()
        if body is not None:
            query = body.fn

            def app_then_body(c: _Ctx) -> Any:  # an application property spelled like the query wins
                value = c.app_get(text, lower, _ABSENT)
                return query(c) if value is _ABSENT else _q_from_string(value)

            return _Node(_Q, app_then_body)
        system = self._system_property(text[1:]).fn

        def app_then_system(c: _Ctx) -> Any:
            value = c.app_get(text, lower, _ABSENT)
            return system(c) if value is _ABSENT else value

        return _Node(_S, app_then_system)

    def _sys_prop_escaped(self, tree: Tree[Token]) -> _Node:
        token: Token = tree.children[1]  # type: ignore[assignment]
        text = str(token)
        if text[:6].lower() == "$body.":
            return self._body_query(token)
        return self._system_property(text[1:])

    def _body_query(self, token: Token) -> _Node:
        path = str(token)[6:]
        if not path:
            raise _CompileError("$body query cannot be empty", token)
        error = _json_path_error(path)
        if error:
            raise _CompileError(f"invalid $body query {path!r}: {error}", token)
        steps = _json_path_steps(path)
        if steps is None:
            return _constant(_Q, UNDEFINED)

        def query(c: _Ctx) -> Any:
            root = c.json_root()
            if root is _BAD_BODY:
                return UNDEFINED
            return _query_value(_select(root, steps))

        return _Node(_Q, query)

    # ------------------------------------------------------------------ operators

    def _unary(self, tree: Tree[Token]) -> _Node:
        op: Token = tree.children[0]  # type: ignore[assignment]
        operand = self.compile(tree.children[1])  # type: ignore[arg-type]
        f = operand.fn
        if op.type == "MINUS":
            if operand.ty is _D:
                return _derive(_D, lambda c: -f(c), operand)
            raise self._operand_error(op, operand)
        expected = _N if operand.ty is _N else _B
        if not _matches(expected, operand.ty, True):
            raise self._operand_error(op, operand)
        if operand.ty is _N:
            return _constant(_B, True)
        if operand.ty is _Q:
            return _derive(_B, lambda c: (not v) if (v := f(c)) is True or v is False else UNDEFINED, operand)
        return _derive(_B, lambda c: UNDEFINED if (v := f(c)) is UNDEFINED else not v, operand)

    def _binary(self, tree: Tree[Token]) -> _Node:
        left_tree, op, right_tree = tree.children
        assert isinstance(op, Token)
        left = self.compile(left_tree)  # type: ignore[arg-type]
        right = self.compile(right_tree)  # type: ignore[arg-type]
        kind = op.type
        if kind in ("STAR", "SLASH", "PERCENT", "PLUS", "MINUS"):
            return self._arithmetic(op, left, right)
        if kind == "CONCAT":
            if not (_matches(_S, left.ty, True) and _matches(_S, right.ty, True)):
                raise self._operand_error(op, left, right)
            return self._call_builtin(op, "concat", [left, right])
        if kind in _COMPARE_OPS:
            return self._compare(op, left, right)
        if kind in ("AND", "OR"):
            return self._logical(op, left, right)
        return self._coalesce(op, left, right)

    def _arithmetic(self, op: Token, left: _Node, right: _Node) -> _Node:
        if not (_matches(_D, left.ty, True) and _matches(_D, right.ty, True)):
            raise self._operand_error(op, left, right)
        number_op: Callable[[float, float], float] = {
            "STAR": operator.mul, "SLASH": _div, "PERCENT": _mod, "PLUS": operator.add, "MINUS": operator.sub,
        }[op.type]
        if _Q in (left.ty, right.ty):
            if op.type == "PERCENT":
                raise _CompileError("operator '%' is not supported on $body values", op)
            lf, rf = _as_query(left).fn, _as_query(right).fn

            def query_arith(c: Any) -> Any:
                a, b = lf(c), rf(c)
                if a.__class__ is float and b.__class__ is float:
                    r = number_op(a, b)
                    return r if r == r else UNDEFINED
                return UNDEFINED

            return _derive(_Q, query_arith, left, right)
        lf, rf = left.fn, right.fn
        if right.const:
            rv = rf(None)
            return _derive(_D, lambda c: number_op(lf(c), rv), left)
        return _derive(_D, lambda c: number_op(lf(c), rf(c)), left, right)

    def _compare(self, op: Token, left: _Node, right: _Node) -> _Node:
        if not _matches(left.ty, right.ty, True):
            raise self._operand_error(op, left, right)
        cmp = _COMPARE_OPS[op.type]
        ty = _Q if _Q in (left.ty, right.ty) else left.ty
        if ty is _N:
            return _constant(_B, op.type in ("EQ", "LE", "GE"))
        if ty is _U:
            return _constant(_B, UNDEFINED)
        if ty is _Q:
            lf, rf = _as_query(left).fn, _as_query(right).fn

            def query_compare(c: Any) -> Any:
                a, b = lf(c), rf(c)
                if a is UNDEFINED or b is UNDEFINED:
                    return UNDEFINED
                if a.__class__ is b.__class__ and (a.__class__ is float or a.__class__ is str):
                    return cmp(a, b)
                return cmp(_query_order(a, b), 0)

            return _derive(_B, query_compare, left, right)
        lf, rf = left.fn, right.fn
        if ty is _S:
            if right.const:
                rv = rf(None)
                if rv.__class__ is not str:
                    return _constant(_B, UNDEFINED)
                return _derive(_B, lambda c: cmp(a, rv) if (a := lf(c)).__class__ is str else UNDEFINED, left)

            def string_compare(c: Any) -> Any:
                a, b = lf(c), rf(c)
                return cmp(a, b) if a.__class__ is str and b.__class__ is str else UNDEFINED

            return _derive(_B, string_compare, left, right)
        if ty is _D:
            def number_compare(c: Any) -> Any:
                a, b = lf(c), rf(c)
                return UNDEFINED if a != a or b != b else cmp(a, b)

            return _derive(_B, number_compare, left, right)

        def bool_compare(c: Any) -> Any:  # True > False, as the official Bool ordering has it
            a, b = lf(c), rf(c)
            return UNDEFINED if a is UNDEFINED or b is UNDEFINED else cmp(a, b)

        return _derive(_B, bool_compare, left, right)

    def _logical(self, op: Token, left: _Node, right: _Node) -> _Node:
        lt, rt = left.ty, right.ty
        logical_types = (_N, _B, _U)
        # The official check accepts anything on the right of a $body value, but a $body value only on
        # the left; reproduced as is.
        if not ((lt in logical_types or lt is _Q) and (rt in logical_types or lt is _Q)):
            raise self._operand_error(op, left, right)
        is_and = op.type == "AND"
        null_result = (_N in (lt, rt)) if is_and else (lt is _N and rt is _N)
        if _Q in (lt, rt):
            if null_result:
                raise self._operand_error(op, left, right)
            lf, rf = _as_query(left).fn, _as_query(right).fn

            def query_logic(c: Any) -> Any:
                a, b = lf(c), rf(c)
                if (a is True or a is False) and (b is True or b is False):
                    return (a and b) if is_and else (a or b)
                return UNDEFINED

            return _derive(_B, query_logic, left, right)
        if {lt, rt} == {_N, _U}:
            raise self._operand_error(op, left, right)
        if null_result:
            return _constant(_N, NULL)
        lf, rf = left.fn, right.fn
        if lt is _N:  # OR only: null OR x is x
            return right
        if rt is _N:
            return left
        if is_and:
            def and_(c: Any) -> Any:
                a = lf(c)
                return False if a is False else _and3(a, rf(c))

            return _derive(_B, and_, left, right)

        def or_(c: Any) -> Any:
            a = lf(c)
            return True if a is True else _or3(a, rf(c))

        return _derive(_B, or_, left, right)

    def _coalesce(self, op: Token, left: _Node, right: _Node) -> _Node:
        if not _matches(left.ty, right.ty, True):
            raise self._operand_error(op, left, right)
        if left.ty is _U and right.ty is _U:
            return right
        if _Q in (left.ty, right.ty):
            left, right = _as_query(left), _as_query(right)
        lf, rf = left.fn, right.fn
        ty = left.ty
        if ty is _N:
            return left
        if ty is _D:
            return _derive(_D, lambda c: v if (v := lf(c)) == v else rf(c), left, right)
        return _derive(ty, lambda c: rf(c) if (v := lf(c)) is UNDEFINED else v, left, right)

    # ------------------------------------------------------------------ functions

    def _call(self, tree: Tree[Token]) -> _Node:
        name_token: Token = tree.children[0]  # type: ignore[assignment]
        args_tree = tree.children[2]
        name = str(name_token).lower()
        if name == _TWIN_CHANGE_INCLUDES:
            return self._twin_change_includes(name_token, args_tree)
        if name not in _BUILTINS:
            raise _CompileError(f"unknown function {str(name_token)!r}", name_token)
        args = [self.compile(a) for a in args_tree.children[::2]] if isinstance(args_tree, Tree) else []  # type: ignore[arg-type]
        return self._call_builtin(name_token, name, args)

    def _call_builtin(self, token: Token, name: str, args: list[_Node]) -> _Node:
        given = [a.ty for a in args]
        for executor in _BUILTINS[name]:
            if executor.accepts(given):
                break
        else:
            shown = ", ".join(t.value for t in given)
            raise _CompileError(f"invalid arguments to function {name}({shown})", token)
        result, impl = executor.result, executor.impl
        if executor.query_ok:
            args = [_as_query(a) for a in args]
        fns = [a.fn for a in args]
        if len(fns) == 1:
            (f,) = fns
            return _derive(result, lambda c: impl(f(c)), *args)
        if len(fns) == 2:
            f1, f2 = fns
            return _derive(result, lambda c: impl(f1(c), f2(c)), *args)
        return _derive(result, lambda c: impl(*[f(c) for f in fns]), *args)

    def _twin_change_includes(self, token: Token, args_tree: Any) -> _Node:
        if self.source_prefix != _TWIN_CHANGE_SOURCE:
            raise _CompileError(
                "twin_change_includes is only available in routes FROM /twinChangeNotifications", token
            )
        path = "" if args_tree is None else "".join(
            str(t) for t in args_tree.scan_values(lambda v: isinstance(v, Token))
        )
        if not path:
            raise _CompileError("twin_change_includes needs a property path", token)
        error = _json_path_error(path)
        if error is None and not path.lower().startswith(_TWIN_CHANGE_PREFIXES):
            error = "the path must start with properties.reported., properties.desired. or tags."
        if error:
            raise _CompileError(f"invalid twin_change_includes path {path!r}: {error}", token)
        steps = _json_path_steps(path)

        def includes(c: _Ctx) -> Any:
            root = c.json_root()
            if root is _BAD_BODY or steps is None:
                return UNDEFINED
            return _select(root, steps) is not _MISSING_PATH

        return _Node(_B, includes)

    # ------------------------------------------------------------------ errors

    @staticmethod
    def _operand_error(op: Token, *operands: _Node) -> _CompileError:
        have = " and ".join(o.ty.value for o in operands)
        word = "NOT" if op.type == "NOT" else str(op).upper() if op.type in ("AND", "OR") else str(op)
        return _CompileError(f"operator {word!r} cannot be applied to {have}", op)


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
