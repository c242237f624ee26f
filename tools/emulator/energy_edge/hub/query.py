"""The subset of the IoT Hub query language operators use, over twins; also deployments' target conditions.

Supported: ``SELECT * FROM devices`` and ``SELECT * FROM devices.modules``, with ``WHERE`` conditions made of
``AND``/``OR``/``NOT``, parentheses, comparisons (``= != <> < > <= >=``) and ``IS_DEFINED(path)``, on paths
into the twin (``tags.site``, ``properties.reported.config.status``, ``properties.desired.x``, ``deviceId``,
``moduleId``, ``status``, ...) and literals (strings in single or double quotes, numbers, ``true``, ``false``,
``null``). A path that selects nothing is undefined: comparisons with it are not true, as in IoT Hub.

Valid IoT Hub syntax this does not implement (projections, ``TOP``, ``GROUP BY``, ``IN``, other functions,
other collections) is refused with a `QueryNotSupported` naming it; text that is not a query at all raises
`QuerySyntaxError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Condition = Callable[[dict[str, Any]], Any]  # a twin view -> True, False or None (undefined)

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<op><>|!=|<=|>=|=|<|>)
      | (?P<punct>[(),*\[\]])
      | (?P<name>[A-Za-z_$][A-Za-z0-9_$\-]*(?:\.[A-Za-z_$][A-Za-z0-9_$\-]*)*)
    )""",
    re.VERBOSE,
)
_COLLECTIONS = {"devices": "devices", "devices.modules": "modules"}
_UNSUPPORTED_KEYWORDS = {
    "TOP": "SELECT TOP", "GROUP": "GROUP BY", "ORDER": "ORDER BY", "IN": "IN", "NIN": "NIN", "AS": "AS",
}
_UNSUPPORTED_FUNCTIONS = {"IS_BOOL", "IS_NUMBER", "IS_STRING", "IS_OBJECT", "IS_PRIMITIVE", "IS_NULL",
                          "STARTSWITH", "ENDSWITH", "COUNT", "AVG", "SUM", "MIN", "MAX", "CONTAINS", "LOWER", "UPPER"}


class QueryError(ValueError):
    """A query the hub refuses."""


class QuerySyntaxError(QueryError):
    """Not a query IoT Hub would accept either (400)."""


class QueryNotSupported(QueryError):
    """Valid IoT Hub syntax that the emulator does not implement (501)."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    at: int


def _tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise QuerySyntaxError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos}")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


@dataclass(frozen=True)
class Query:
    collection: str  # "devices" or "modules"
    condition: Condition

    def matches(self, twin_view: dict[str, Any]) -> bool:
        return self.condition(twin_view) is True


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    # ------------------------------------------------------------ token helpers

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token.kind == "name" and token.text.upper() == word:
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text.upper() != text.upper()):
            found = f"{token.text!r} at position {token.at}" if token else "the end of the query"
            raise QuerySyntaxError(f"expected {text or kind}, found {found}")
        self.pos += 1
        return token

    def _refuse_unsupported(self, token: Token) -> None:
        word = token.text.upper()
        if token.kind == "name" and word in _UNSUPPORTED_KEYWORDS:
            raise QueryNotSupported(f"{_UNSUPPORTED_KEYWORDS[word]} is not implemented in the emulator")

    # ------------------------------------------------------------ grammar

    def query(self) -> Query:
        self.expect("name", "SELECT")
        token = self.peek()
        if token is not None:
            self._refuse_unsupported(token)
        if token is None or token.kind != "punct" or token.text != "*":
            raise QueryNotSupported("only SELECT * is implemented in the emulator (no projections)")
        self.pos += 1
        self.expect("name", "FROM")
        source = self.expect("name")
        collection = _COLLECTIONS.get(source.text.lower())
        if collection is None:
            raise QueryNotSupported(
                f"FROM {source.text} is not implemented in the emulator (only devices and devices.modules)")
        condition: Condition = _always
        if self.keyword("WHERE"):
            condition = self.condition()
        token = self.peek()
        if token is not None:
            self._refuse_unsupported(token)
            raise QuerySyntaxError(f"unexpected {token.text!r} at position {token.at}")
        return Query(collection, condition)

    def condition(self) -> Condition:
        left = self.conjunction()
        while self.keyword("OR"):
            right = self.conjunction()
            left = _or(left, right)
        return left

    def conjunction(self) -> Condition:
        left = self.negation()
        while self.keyword("AND"):
            right = self.negation()
            left = _and(left, right)
        return left

    def negation(self) -> Condition:
        if self.keyword("NOT"):
            return _not(self.negation())
        return self.primary()

    def primary(self) -> Condition:
        token = self.peek()
        if token is None:
            raise QuerySyntaxError("the condition ends too early")
        if token.kind == "punct" and token.text == "(":
            self.pos += 1
            inner = self.condition()
            self.expect("punct", ")")
            return inner
        if token.kind == "name" and token.text.upper() == "IS_DEFINED":
            self.pos += 1
            self.expect("punct", "(")
            path = self.expect("name").text
            self.expect("punct", ")")
            return _is_defined(path.split("."))
        if token.kind == "name" and token.text.upper() in _UNSUPPORTED_FUNCTIONS:
            raise QueryNotSupported(f"the function {token.text.upper()} is not implemented in the emulator "
                                    "(only IS_DEFINED)")
        left = self.operand()
        op_token = self.peek()
        if op_token is not None:
            self._refuse_unsupported(op_token)
        op = self.expect("op").text
        right = self.operand()
        return _compare(left, op, right)

    def operand(self) -> Callable[[dict[str, Any]], Any]:
        token = self.peek()
        if token is None:
            raise QuerySyntaxError("the condition ends too early")
        self.pos += 1
        if token.kind == "string":
            value: Any = re.sub(r"\\(.)", r"\1", token.text[1:-1])
            return lambda _doc: value
        if token.kind == "number":
            number = float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
            return lambda _doc: number
        if token.kind == "name":
            word = token.text
            constants = {"true": True, "false": False, "null": None}
            if word.lower() in constants:
                constant = constants[word.lower()]
                return lambda _doc: constant
            if self.peek() is not None and self.peek().kind == "punct" and self.peek().text == "(":  # type: ignore[union-attr]
                raise QueryNotSupported(f"the function {word} is not implemented in the emulator")
            return _path(word.split("."))
        raise QuerySyntaxError(f"unexpected {token.text!r} at position {token.at}")


_UNDEFINED = object()


def _lookup(doc: Any, steps: list[str]) -> Any:
    for step in steps:
        if not isinstance(doc, dict) or step not in doc:
            return _UNDEFINED
        doc = doc[step]
    return doc


def _path(steps: list[str]) -> Callable[[dict[str, Any]], Any]:
    return lambda doc: _lookup(doc, steps)


def _always(_doc: dict[str, Any]) -> Any:
    return True


def _is_defined(steps: list[str]) -> Condition:
    return lambda doc: _lookup(doc, steps) is not _UNDEFINED


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


_ORDERING = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


def _compare(left: Callable[[dict[str, Any]], Any], op: str, right: Callable[[dict[str, Any]], Any]) -> Condition:
    def condition(doc: dict[str, Any]) -> Any:
        a, b = left(doc), right(doc)
        if a is _UNDEFINED or b is _UNDEFINED:
            return None
        same = _kind(a) == _kind(b)
        if op == "=":
            return same and a == b
        if op in ("!=", "<>"):
            return not (same and a == b)
        if not same or _kind(a) not in ("number", "string"):
            return None
        return _ORDERING[op](a, b)

    return condition


def _and(left: Condition, right: Condition) -> Condition:
    def condition(doc: dict[str, Any]) -> Any:
        a, b = left(doc), right(doc)
        if a is False or b is False:
            return False
        return True if a is True and b is True else None

    return condition


def _or(left: Condition, right: Condition) -> Condition:
    def condition(doc: dict[str, Any]) -> Any:
        a, b = left(doc), right(doc)
        if a is True or b is True:
            return True
        return False if a is False and b is False else None

    return condition


def _not(inner: Condition) -> Condition:
    def condition(doc: dict[str, Any]) -> Any:
        value = inner(doc)
        return None if value is None else not value

    return condition


def parse_query(text: str) -> Query:
    if not isinstance(text, str) or not text.strip():
        raise QuerySyntaxError("the query is empty")
    return _Parser(text).query()


def parse_condition(text: str) -> Condition:
    """A deployment's target condition (a WHERE clause without the WHERE); `*` targets every device."""
    if text.strip() == "*":
        return _always
    parser = _Parser(text)
    condition = parser.condition()
    token = parser.peek()
    if token is not None:
        parser._refuse_unsupported(token)
        raise QuerySyntaxError(f"unexpected {token.text!r} at position {token.at}")
    return condition
