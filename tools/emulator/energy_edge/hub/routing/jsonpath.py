"""`$body` queries: the JSON path subset edgeHub accepts and how a value is read from a body."""

from __future__ import annotations

import calendar
import math
import re
from typing import Any

from energy_edge.hub.routing.types import _ABSENT, _MISSING_PATH, NULL, UNDEFINED

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
