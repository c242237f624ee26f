"""Tests for the edgeHub route grammar and evaluator (energy_edge.hub.routes).

Most cases are data from the routing unit tests of Azure/iotedge
(edge-hub/core/test/Microsoft.Azure.Devices.Routing.Core.Test at 55353a649ea9d624a684428fab2d925a81bcda07):
MessageSourceTest, query/ConditionCompilerTest, query/ConditionVisitorTest, query/BodyQueryTest,
query/BodyQueryI18NTest, query/TwinChangeIncludesTest and routeFactory/RouteFactoryTest. Where the official
engine rejects a route when it compiles it, these tests expect RouteError at load time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, cast

import pytest

from energy_edge.hub.routes import (
    DEFAULT_PRIORITY,
    NULL,
    UNDEFINED,
    Endpoint,
    RoutableMessage,
    Route,
    RouteError,
    RouteTable,
    compile_condition,
    parse_route,
)
from energy_edge.hub.routing import types as route_types

JSON_SYS = {"contentType": "application/json", "contentEncoding": "utf-8"}
UPSTREAM = Endpoint("upstream")


def message(
    source: str = "/messages",
    body: bytes | str = b"",
    app: Mapping[str, Any] | None = None,
    sys: Mapping[str, Any] | None = None,
) -> RoutableMessage:
    raw = body.encode() if isinstance(body, str) else body
    return RoutableMessage(source, raw, cast("Mapping[str, str]", app or {}), cast("Mapping[str, str]", sys or {}))


def evaluate(condition: str, msg: RoutableMessage, source: str = "/messages") -> bool | None:
    return compile_condition(condition, source=source).evaluate(msg)


# ====================================================================== message sources (MessageSourceTest)

MODULE_SOURCE = "/messages/modules/ModId1/outputs/Op1"
TELEMETRY = "/messages"
TWIN = "/twinChangeNotifications"

SOURCE_CASES = [
    # route source, message source, matches
    *[(s, TELEMETRY, True) for s in ["/", "/*", "/messages", "/messages/*", "/messages/"]],
    *[
        (s, TELEMETRY, False)
        for s in [
            "/twinChangeNotifications", "/foo/*", "/message", "/*/messages/*", "/messages/event", "/messages/modules",
            "/messages/modules/*", "/messages/modules/ModId1", "/messages/modules/ModId1/*",
        ]
    ],
    *[(s, TWIN, True) for s in ["/", "/*", "/twinChangeNotifications", "/twinChangeNotifications/*"]],
    *[
        (s, TWIN, False)
        for s in [
            "/messages", "/foo/*", "/message", "/*/messages/*", "/messages/modules", "/messages/modules/*",
            "/messages/modules/ModId1", "/messages/modules/ModId1/*",
        ]
    ],
    *[
        (s, MODULE_SOURCE, True)
        for s in [
            "/", "/*", "/messages", "/messages/*", "/messages/modules", "/messages/modules/*",
            "/messages/modules/ModId1", "/messages/modules/ModId1/*", "/messages/modules/ModId1/outputs",
            "/messages/modules/ModId1/outputs/*", "/messages/modules/ModId1/outputs/Op1",
        ]
    ],
    *[
        (s, MODULE_SOURCE, False)
        for s in [
            "/foo", "/*/bar/*", "/modulemessages", "/messages/events", "/messages/modules/events",
            "/messages/modules/ModId2", "/messages/modules/ModId2/*", "/messages/modules/ModId1/outputs/Op2",
        ]
    ],
    # module messages without an output name; prefixes stop at a '/', and case does not matter
    ("/messages/modules/a", "/messages/modules/a", True),
    ("/messages/modules/a", "/messages/modules/ab/outputs/x", False),
    ("/messages/modules/a*", "/messages/modules/ab/outputs/x", False),
    ("/messages/modules/a/*", "/messages/modules/a", True),
    ("/messages/modules/a/outputs/*", "/messages/modules/a", False),
    ("/MESSAGES/Modules/SOLAR/*", "/messages/modules/solar/outputs/telemetry", True),
]


@pytest.mark.parametrize(("route_source", "message_source", "expected"), SOURCE_CASES)
def test_source_matching(route_source: str, message_source: str, expected: bool) -> None:
    route = Route("r", f"FROM {route_source} INTO $upstream", route_source, UPSTREAM)
    assert route.matches(message(message_source)) is expected


@pytest.mark.parametrize(
    ("route_source", "message_source", "expected"),
    [case for case in SOURCE_CASES if case[0] not in ("/", "/messages/")],  # those two are not route syntax
)
def test_source_matching_through_the_route_grammar(route_source: str, message_source: str, expected: bool) -> None:
    route = parse_route("r", f"FROM {route_source} INTO $upstream")
    assert route.source == route_source
    assert route.matches(message(message_source)) is expected


# ====================================================================== conditions (ConditionCompilerTest)

# The message every ConditionCompilerTest case runs against.
CONDITION_MESSAGE = message(
    app={"key1": "value1", "key2": "3", "key3": "VALUE3", "null_value": None, "$sys4": "value4"},
    sys={"sys1": "sysvalue1", "sys2": "4", "sys3": "SYSVALUE3", "sysnull": None, "sys4": "sysvalue4"},
)

CONDITION_CASES: list[tuple[str, bool | None]] = [
    # Empty
    ("", None),
    ('  ', None),
    # Literals
    ('3', None),
    ('"a string"', None),
    ("'a string'", None),
    # Equals
    ('3 = 3', True),
    ('3 = 4', False),
    ('"3" = "3"', True),
    ('"3" = "4"', False),
    ("'3' = '3'", True),
    ("'3' = '4'", False),
    ('true = true', True),
    ('true = false', False),
    ('false = false', True),
    ('false = true', False),
    ('key2 = "3"', True),
    ("key2 = '3'", True),
    ('as_number(key2) = 3', True),
    ('as_number(key2) = 4', False),
    ('is_defined(none = "4")', False),
    ('as_number(none) = 3', None),
    ('$sys2 = "4"', True),
    ("$sys2 = '4'", True),
    ('as_number($sys2) = 4', True),
    ('as_number($sys2) = 3', False),
    ('is_defined($none)', False),
    ('as_number($none) = 3', None),
    # Not equals
    ('3 != 3', False),
    ('3 != 4', True),
    ('"3" != "3"', False),
    ('"3" != "4"', True),
    ("'3' != '3'", False),
    ("'3' != '4'", True),
    ('true != true', False),
    ('true != false', True),
    ('false != false', False),
    ('false != true', True),
    ('key2 != "3"', False),
    ("key2 != '3'", False),
    ('as_number(key2) != 3', False),
    ('as_number(key2) != 4', True),
    ('none != "4"', None),
    ('as_number(none) != 3', None),
    ('3 <> 3', False),
    ('3 <> 4', True),
    ('"3" <> "3"', False),
    ('"3" <> "4"', True),
    ("'3' <> '3'", False),
    ("'3' <> '4'", True),
    ('true <> true', False),
    ('true <> false', True),
    ('false <> false', False),
    ('false <> true', True),
    ('key2 <> "3"', False),
    ("key2 <> '3'", False),
    ('as_number(key2) <> 3', False),
    ('as_number(key2) <> 4', True),
    ('none <> "4"', None),
    ('as_number(none) <> 3', None),
    # And, Or, Not
    ('true', True),
    ('false', False),
    ('not true', False),
    ('not false', True),
    ('not (true and false)', True),
    ('true AND true', True),
    ('true AND not true', False),
    ('true and true', True),
    ('true and false', False),
    ('false and true', False),
    ('false and false', False),
    ('true OR true', True),
    ('true or true', True),
    ('true or false', True),
    ('false or true', True),
    ('false or false', False),
    # Undefined
    ('undefined', None),
    ('undefined or false', None),
    ('undefined or true', True),
    ('true or undefined', True),
    ('false or undefined', None),
    ('undefined or undefined', None),
    ('true and undefined', None),
    ('false and undefined', False),
    ('undefined and false', False),
    ('undefined and undefined', None),
    ('undefined < undefined', None),
    ("true or none = 'true'", True),
    ("false or none = 'true'", None),
    ("none = 'true' or true", True),
    ("none = 'true' or false", None),
    ("none = 'true' or none2 = 'true'", None),
    ("true and none = 'true'", None),
    ("false and none = 'true'", False),
    ("none = 'true' and true", None),
    ("none = 'true' and false", False),
    ("none = 'true' and none2 = 'true'", None),
    ("not (none = 'true')", None),
    # Coalesce
    ('undefined ?? undefined', None),
    ('(key1 ?? "hello") = "value1"', True),
    ('(none ?? "hello") = "hello"', True),
    ('(none ?? none ?? "hello") = "hello"', True),
    ('(as_number(key2) ?? 12.34) = 3', True),
    ('(as_number(key1) ?? 12.34) = 12.34', True),
    ('(3 % 0 ?? 12.34) = 12.34', True),
    ('(none ?? none) = "value"', None),
    # Null
    ('null and null', False),
    ('(null and null) = null', True),
    ('(null and false) = null', True),
    ('(null and true) = null', True),
    ('null or true', True),
    ('null or false', False),
    ('(null or null) = null', True),
    ('null', False),
    ('not null', True),
    # Addition
    ('3 + 4 = 7', True),
    ('(3 + as_number(key2)) = 6', True),
    ('is_defined(3 + as_number(none))', False),
    ('is_defined(3 + as_number(key1))', False),
    # Subtraction
    ('3 - 4 = -1', True),
    ('(3 - as_number(key2)) = 0', True),
    ('is_defined(3 - as_number(none))', False),
    ('is_defined(3 - as_number(key1))', False),
    # Multiplication
    ('3 * 4 = 12', True),
    ('(3 * as_number(key2)) = 9', True),
    ('is_defined(3 * as_number(none))', False),
    ('is_defined(3 * as_number(key1))', False),
    # Division
    ('3 / 4 = 0.75', True),
    ('(3 / as_number(key2)) = 1', True),
    ('is_defined(3 / as_number(none))', False),
    ('is_defined(3 / as_number(key1))', False),
    # Modulo
    ('4 % 3 = 1', True),
    ('(3 % as_number(key2)) = 0', True),
    ('is_defined(3 % 0)', False),
    ('is_defined(3 % as_number(none))', False),
    ('is_defined(3 % as_number(key1))', False),
    # Negation
    ('-1 < 0', True),
    ('-(3 + 4) = -7', True),
    ('is_defined(-undefined)', False),
    # Less than
    ('4 < 7', True),
    ('7 < 7', False),
    ('8 < 7', False),
    ('3 + 4 < 7', False),
    ('3 < as_number(none)', None),
    ('3 < as_number(null_value)', None),
    ("'a' < 'b'", True),
    ("'a' < 'a'", False),
    ("'b' < 'a'", False),
    ("'a' < none", None),
    # Less than or equal
    ('4 <= 7', True),
    ('7 <= 7', True),
    ('8 <= 7', False),
    ('3 + 4 <= 7', True),
    ('3 <= as_number(none)', None),
    ('3 <= as_number(null_value)', None),
    ("'a' <= 'b'", True),
    ("'a' <= 'a'", True),
    ("'b' <= 'a'", False),
    ("'a' <= none", None),
    # Greater than
    ('4 > 7', False),
    ('7 > 7', False),
    ('8 > 7', True),
    ('3 + 4 > 7', False),
    ('3 > as_number(none)', None),
    ('3 > as_number(null_value)', None),
    ("'a' > 'b'", False),
    ("'a' > 'a'", False),
    ("'b' > 'a'", True),
    ("'a' > none", None),
    # Greater than or equal
    ('4 >= 7', False),
    ('7 >= 7', True),
    ('8 >= 7', True),
    ('3 + 4 >= 7', True),
    ('3 >= as_number(none)', None),
    ('3 >= as_number(null_value)', None),
    ("'a' >= 'b'", False),
    ("'a' >= 'a'", True),
    ("'b' >= 'a'", True),
    # Access
    ('key1 = "value1"', True),
    ('KEY1 = "value1"', True),
    ('key1 = "value1" and key1 = "value1"', True),
    ('key1 = "value2" or key1 = "value1"', True),
    ('key1 = "value2"', False),
    ('key2 = "value1"', False),
    ('none = "value1"', None),
    ('$sys4 = "value4"', True),
    ('{$sys4} = "sysvalue4"', True),
    # system properties
    ('$sys1 = "sysvalue1"', True),
    ('{$sys1} = "sysvalue1"', True),
    ('{ $sys1 } = "sysvalue1"', True),
    # as_number
    ('as_number("3") = 3', True),
    ('AS_NUMBER("3") = 3', True),
    ("AS_NUMBER('10e10') = 10e10", True),
    ("AS_NUMBER('10e1000') = 10e1000", True),
    ("AS_NUMBER('10e1000') = 1/0", True),
    ("AS_NUMBER('10000000000000000000000000') = 1e25", True),
    ('as_number(key1) = 3', None),
    ('as_number(key3) = 3', None),
    ('as_number(key2) * 3 = 9', True),
    ('as_number(key3) * 3 = 9', None),
    ('as_number(none) * 3 = 9', None),
    ('as_number(null_value) * 3 = 9', None),
    ('as_number(as_number(4)) * 3 = 12', True),
    # is_bool
    ('is_bool(12.34)', False),
    ("is_bool('not a number')", False),
    ('is_bool("not a number")', False),
    ('is_bool(true)', True),
    ('IS_BOOL(true)', True),
    ('is_bool(false)', True),
    ('is_bool(none)', False),
    ('is_bool(key1)', False),
    # is_defined
    ('is_defined(undefined)', False),
    ('IS_DEFINED(undefined)', False),
    ('is_defined(key1)', True),
    ('is_defined(key4)', False),
    ('is_defined(3 * as_number(key4))', False),
    ('is_defined(undefined and true)', False),
    ('is_defined(as_number("3"))', True),
    ('is_defined(as_number("apple"))', False),
    ('is_defined(null_value)', True),
    ('is_defined(null)', True),
    ('is_defined(10e1000)', True),
    # is_null
    ('is_null(12.34)', False),
    ("is_null('not a number')", False),
    ('is_null("not a number")', False),
    ('is_null(true)', False),
    ('is_null(false)', False),
    ('is_null(3 / 0)', False),
    ('is_null(as_number(key2))', False),
    ('is_null(as_number(key1))', False),
    ('is_null(as_number(key1) / as_number(key2))', False),
    ('is_null(null)', True),
    ('IS_NULL(null)', True),
    ('is_null(null_value)', True),
    ('is_null(none)', False),
    # is_number
    ('is_number(12.34)', True),
    ('IS_NUMBER(12.34)', True),
    ("is_number('not a number')", False),
    ('is_number("not a number")', False),
    ('is_number(true)', False),
    ('is_number(false)', False),
    ('is_number(3 / 0)', False),
    ('is_number(as_number(key2))', True),
    ('is_number(as_number(key1))', False),
    ('is_number(as_number(key1) / as_number(key2))', False),
    # is_string
    ('is_string(12.34)', False),
    ("is_string('not a number')", True),
    ("IS_STRING('not a number')", True),
    ('is_string("not a number")', True),
    ('is_string(true)', False),
    ('is_string(false)', False),
    ('is_string(none)', False),
    ('is_string(key1)', True),
    ('is_string(null_value)', False),
    ("is_string('a' || 'b')", True),
    # concat
    ("concat('a', 'b', 'c', 'd') = 'abcd'", True),
    ("CONCAT('a', 'b', 'c', 'd') = 'abcd'", True),
    ("concat('a', 'b') = concat('a', 'b')", True),
    ("concat('a', key1, 'd') = 'avalue1d'", True),
    ("is_defined(concat('a', none, 'd'))", False),
    ("'a' || 'b' || 'c' || 'd' = 'abcd'", True),
    ("'a' || key1 || 'd' = 'avalue1d'", True),
    ("'a' || null_value || 'd' = 'ad'", True),
    ("concat('a', null_value, 'd') = 'ad'", True),
    ("is_defined('a' || none || 'd')", False),
    ("is_defined('a' || null_value || 'd')", True),
    # length
    ("length('HELLO') = 5", True),
    ("LENGTH('') = 0", True),
    ('length(key3) = 6', True),
    ('is_defined(length(null_value))', False),
    ('is_defined(length(none))', False),
    # lower
    ("lower('HELLO') = 'hello'", True),
    ("LOWER('hello') = 'hello'", True),
    ("lower(key3) = 'value3'", True),
    ('is_defined(lower(null_value))', False),
    ('is_defined(lower(none))', False),
    # upper
    ("upper('HELLO') = 'HELLO'", True),
    ("UPPER('hello') = 'HELLO'", True),
    ("upper(key1) = 'VALUE1'", True),
    ('is_defined(upper(null_value))', False),
    ('is_defined(upper(none))', False),
    # substring
    ("substring('abc', 1) = 'bc'", True),
    ("substring('abc', 2) = 'c'", True),
    ("SUBSTRING('abc', 3) = 'c'", False),
    ("SUBSTRING('abc', 4) = 'c'", None),
    ("substring(key1, 1) = 'alue1'", True),
    ("substring('abc', -1) = ''", None),
    ("substring('abc', 1 % 0) = ''", None),
    ("substring(null_value, 1) = 'a'", None),
    ("substring(none, 1) = 'a'", None),
    ("substring('abc', 1, 1) = 'b'", True),
    ("substring('abc', 1, 0) = ''", True),
    ("SUBSTRING(key1, 1, 1) = 'a'", True),
    ("substring('abc', -1, 0) = ''", None),
    ("substring('abc', 1, -2) = ''", None),
    ("substring('abc', 1 % 0, 1) = ''", None),
    ("substring('abc', 1, 1 % 0) = ''", None),
    ("substring(null_value, 1, 1) = 'a'", None),
    ("substring(none, 1, 1) = 'a'", None),
    ("substring('hello', 0, 5) = 'hello'", True),
    ("substring('start', 0, 4) = 'star'", True),
    ("substring('hello', 1, 4) = 'ello'", True),
    ("substring('hello', 4, 1) = 'o'", True),
    ("substring('hello', 4, 0) = ''", True),
    # index_of
    ("index_of('abcdef', 'cd') = 2", True),
    ("index_of('abc', 'xz') = -1", True),
    ("INDEX_OF(key1, 'val') = 0", True),
    ("index_of('lue1value1', key1) = 4", True),
    ("index_of('abc', key1) = -1", True),
    ("index_of(null_value, '1') = 0", None),
    ("index_of(none, '1') = 0", None),
    # starts_with
    ("starts_with('abc', 'ab')", True),
    ("starts_with('abc', 'xz')", False),
    ("STARTS_WITH(key1, 'val')", True),
    ("starts_with('value1value1', key1)", True),
    ("starts_with('abc', key1)", False),
    ("starts_with(null_value, '1')", None),
    ("starts_with(none, '1')", None),
    # ends_with
    ("ends_with('abc', 'bc')", True),
    ("ends_with('abc', 'xz')", False),
    ("ENDS_WITH(key1, 'e1')", True),
    ("ends_with('value1value1', key1)", True),
    ("ends_with('abc', key1)", False),
    ("ends_with(null_value, '1')", None),
    ("ends_with(none, '1')", None),
    # contains
    ("contains('abc', 'ab')", True),
    ("contains('abc', 'xz')", False),
    ("CONTAINS(key1, 'val')", True),
    ("contains('value1value1', key1)", True),
    ("contains('abc', key1)", False),
    ("contains(null_value, '1')", None),
    ("contains(none, '1')", None),
    # abs
    ('abs(-12) = 12', True),
    ('abs(12) = 12', True),
    ('ABS(as_number(key2)) = 3', True),
    ('is_defined(abs(as_number(key1)))', False),
    ('is_defined(abs(3 / 0))', True),
    ('is_defined(abs(3 % 0))', False),
    # exp
    ('exp(0) = 1', True),
    ('abs(exp(1) - 2.718281) < 1e-6', True),
    ('abs(EXP(as_number(key2)) - 20.085536) < 1e-6', True),
    ('exp(4000) = 3/0', True),
    ('is_defined(exp(as_number(key1)))', False),
    ('is_defined(exp(3 / 0))', True),
    ('is_defined(exp(3 % 0))', False),
    # power
    ('power(2, 3) = 8', True),
    ('POWER(3, 2) = 9', True),
    ('POWER(10, 4000) = 3/0', True),
    ('power(as_number(key2), as_number(key2)) = 27', True),
    ('is_defined(power(as_number(key1), as_number(key1)))', False),
    ('is_defined(power(3 / 0, 2))', True),
    ('is_defined(power(2, 3 / 0))', True),
    ('is_defined(power(3 % 0, 2))', False),
    ('is_defined(power(2, 3 % 0))', False),
    # square
    ('square(2) = 4', True),
    ('SQUARE(3) = 9', True),
    ('square(as_number(key2)) = 9', True),
    ('is_defined(square(as_number(key1)))', False),
    ('is_defined(square(3 / 0))', True),
    ('is_defined(square(3 % 0))', False),
    # ceiling
    ('ceiling(2) = 2', True),
    ('ceiling(2.1) = 3', True),
    ('ceiling(-2.1) = -2', True),
    ('CEILING(-2) = -2', True),
    ('ceiling(as_number(key2)) = 3', True),
    ('is_defined(ceiling(as_number(key1)))', False),
    ('is_defined(ceiling(3 / 0))', True),
    ('is_defined(ceiling(3 % 0))', False),
    # floor
    ('floor(2) = 2', True),
    ('floor(2.1) = 2', True),
    ('floor(-2.1) = -3', True),
    ('FLOOR(-2) = -2', True),
    ('floor(as_number(key2)) = 3', True),
    ('is_defined(floor(as_number(key1)))', False),
    ('is_defined(floor(3 / 0))', True),
    ('is_defined(floor(3 % 0))', False),
    # sign
    ('sign(0) = 0', True),
    ('sign(2) = 1', True),
    ('sign(2.1) = 1', True),
    ('sign(-2.1) = -1', True),
    ('SIGN(-2) = -1', True),
    ('sign(as_number(key2)) = 1', True),
    ('is_defined(sign(as_number(key1)))', False),
    ('sign(3 / 0) = 1', True),
    ('sign(-3 / 0) = -1', True),
    ('is_defined(sign(3 % 0))', False),
    # sqrt
    ('sqrt(4) = 2', True),
    ('SQRT(-4) = -2', None),
    ('abs(sqrt(as_number(key2)) - 1.732050) < 1e-6', True),
    ('is_defined(sqrt(as_number(key1)))', False),
    ('is_defined(sqrt(3 / 0))', True),
    ('is_defined(sqrt(3 % 0))', False),
]


@pytest.mark.parametrize(("condition", "expected"), CONDITION_CASES)
def test_condition(condition: str, expected: bool | None) -> None:
    assert evaluate(condition, CONDITION_MESSAGE) is expected


# Conditions the official compiler rejects: operand and argument types are checked when a route loads.
REJECTED_CONDITIONS = [
    'is_defined(3 + none)', 'is_defined(3 + null_value)', 'is_defined(true + 3)', 'is_defined(3 + true)',
    'is_defined(3 + undefined)', "is_defined('a' + 'b')", 'is_defined(undefined + 3)',
    'is_defined(undefined + undefined)', 'is_defined(3 - none)', 'is_defined(3 - null_value)',
    'is_defined(true - 3)', 'is_defined(3 - true)', 'is_defined(3 - undefined)', "is_defined('a' - 'b')",
    'is_defined(undefined - 3)', 'is_defined(undefined - undefined)', 'is_defined(3 * none)',
    'is_defined(3 * null_value)', 'is_defined(true * 3)', 'is_defined(3 * true)',
    'is_defined(3 * undefined)', "is_defined('a' * 'b')", 'is_defined(undefined * 3)',
    'is_defined(undefined * undefined)', 'is_defined(3 / none)', 'is_defined(3 / null_value)',
    'is_defined(true / 3)', 'is_defined(3 / true)', 'is_defined(3 / undefined)', "is_defined('a' / 'b')",
    'is_defined(undefined / 3)', 'is_defined(undefined / undefined)', 'is_defined(3 % none)',
    'is_defined(3 % null_value)', 'is_defined(true % 3)', 'is_defined(3 % true)',
    'is_defined(3 % undefined)', "is_defined('a' % 'b')", 'is_defined(undefined % 3)',
    'is_defined(undefined % undefined)', 'is_defined(3 = none)', 'is_defined(3 != none)',
    'is_defined(3 <> none)', 'is_defined(3 > none)', 'is_defined(3 >= none)', 'is_defined(3 < none)',
    'is_defined(3 <= none)', 'is_defined(3 <= none.key1)', 'is_defined(3 <= none.key1.key2)',
    'is_defined(3 = null_value)', 'is_defined(3 != null_value)', 'is_defined(3 <> null_value)',
    'is_defined(3 > null_value)', 'is_defined(3 >= null_value)', 'is_defined(3 < null_value)',
    'is_defined(3 <= null_value)',
    # Coalesce
    'key1 ?? "hello" = "value1"', '(key1 ?? 12.34)', '(12.34 ?? key1)', '(as_number(key2) ?? key1)',
    '(key1 ?? null)', '(null && key1)', '(key1 ?? true)', '(true && key1)',
    # Concat
    "concat() = 'avalue1d'", "concat('a') = 'avalue1d'", "concat(3) = 'avalue1d'",
    "concat('a', null) = 'avalue1d'", "concat('a', undefined) = 'avalue1d'",
    "concat('a', true) = 'avalue1d'", "'a' || null = 'avalue1d'", "'a' || undefined = 'avalue1d'",
    "'a' || true = 'avalue1d'",
    # Length
    "length(12.34) = 'hello'", "length(null) = 'hello'", "length(undefined) = 'value1'",
    "length(true) = 'value1'", "length(false) = 'value1'",
    # Lower
    "lower(12.34) = 'hello'", "lower(null) = 'hello'", "lower(undefined) = 'value1'",
    "lower(true) = 'value1'", "lower(false) = 'value1'",
    # Upper
    "upper(12.34) = 'hello'", "upper(null) = 'hello'", "upper(undefined) = 'value1'",
    "upper(true) = 'value1'", "upper(false) = 'value1'",
    # substring
    "substring() = 'hello'", "substring('hello') = 'hello'", "substring('hello', 'a') = 'hello'",
    "substring('hello', 'a', 'b') = 'hello'", "substring(12.34) = 'hello'", "substring(null) = 'hello'",
    "substring(undefined) = 'value1'", "substring(true) = 'value1'", "substring(false) = 'value1'",
    # index_of
    'index_of()', "index_of('hello')", "index_of('hello', 'a', 'b')", "index_of('hello', 12.34)",
    "index_of(12.34, 'hello')", 'index_of(12.34, 12.34)', "index_of(null, 'hello')",
    "index_of('hello', null)", 'index_of(null, null)', "index_of(undefined, 'hello')",
    "index_of('hello', undefined)", 'index_of(undefined, undefined)', "index_of(true, 'hello')",
    "index_of('hello', true)", 'index_of(true, true)',
    # starts_with
    'starts_with()', "starts_with('hello')", "starts_with('hello', 'a', 'b')",
    "starts_with('hello', 12.34)", "starts_with(12.34, 'hello')", 'starts_with(12.34, 12.34)',
    "starts_with(null, 'hello')", "starts_with('hello', null)", 'starts_with(null, null)',
    "starts_with(undefined, 'hello')", "starts_with('hello', undefined)",
    'starts_with(undefined, undefined)', "starts_with(true, 'hello')", "starts_with('hello', true)",
    'starts_with(true, true)',
    # ends_with
    'ends_with()', "ends_with('hello')", "ends_with('hello', 'a', 'b')", "ends_with('hello', 12.34)",
    "ends_with(12.34, 'hello')", 'ends_with(12.34, 12.34)', "ends_with(null, 'hello')",
    "ends_with('hello', null)", 'ends_with(null, null)', "ends_with(undefined, 'hello')",
    "ends_with('hello', undefined)", 'ends_with(undefined, undefined)', "ends_with(true, 'hello')",
    "ends_with('hello', true)", 'ends_with(true, true)',
    # contains
    'contains()', "contains('hello')", "contains('hello', 'a', 'b')", "contains('hello', 12.34)",
    "contains(12.34, 'hello')", 'contains(12.34, 12.34)', "contains(null, 'hello')",
    "contains('hello', null)", 'contains(null, null)', "contains(undefined, 'hello')",
    "contains('hello', undefined)", 'contains(undefined, undefined)', "contains(true, 'hello')",
    "contains('hello', true)", 'contains(true, true)',
    # Abs
    'is_defined(abs(null))', 'is_defined(abs(undefined))', 'is_defined(abs(true))',
    'is_defined(abs(false))', 'is_defined(abs(key1))', 'is_defined(abs(3, 4))',
    # Exp
    'is_defined(exp(null))', 'is_defined(exp(undefined))', 'is_defined(exp(true))',
    'is_defined(exp(false))', 'is_defined(exp(key1))', 'is_defined(exp(3, 4))',
    # Power
    'is_defined(power(null, 2))', 'is_defined(power(2, null))', 'is_defined(power(null, null))',
    'is_defined(power(undefined, 2))', 'is_defined(power(2, undefined))',
    'is_defined(power(undefined, undefined))', 'is_defined(power(true, 2))', 'is_defined(power(2, true))',
    'is_defined(power(true, true))', 'is_defined(power(key1, 2))', 'is_defined(power(2, key1))',
    'is_defined(power(2, 3, 4))',
    # Square
    'is_defined(square(null))', 'is_defined(square(undefined))', 'is_defined(square(true))',
    'is_defined(square(false))', 'is_defined(square(key1))', 'is_defined(square(3, 3))',
    # Ceiling
    'is_defined(ceiling(null))', 'is_defined(ceiling(undefined))', 'is_defined(ceiling(true))',
    'is_defined(ceiling(false))', 'is_defined(ceiling(key1))', 'is_defined(ceiling(3, 3))',
    # Floor
    'is_defined(floor(null))', 'is_defined(floor(undefined))', 'is_defined(floor(true))',
    'is_defined(floor(false))', 'is_defined(floor(key1))', 'is_defined(floor(3, 3))',
    # Sign
    'is_defined(sign(null))', 'is_defined(sign(undefined))', 'is_defined(sign(true))',
    'is_defined(sign(false))', 'is_defined(sign(key1))', 'is_defined(sign(3, 3))',
    # Sqrt
    'is_defined(sqrt(null))', 'is_defined(sqrt(undefined))', 'is_defined(sqrt(true))',
    'is_defined(sqrt(false))', 'is_defined(sqrt(key1))', 'is_defined(sqrt(3, 3))', 'test == true',
    'true == test', 'none = "',
    # and
    'none and true', 'undefined and "hello"',
    # or
    'none or true',
    # negate
    '- (key1)',
    # not
    'is_defined(not key1)',
]


@pytest.mark.parametrize("condition", REJECTED_CONDITIONS)
def test_condition_rejected_at_load(condition: str) -> None:
    with pytest.raises(RouteError) as info:
        compile_condition(condition, name="typed")
    assert info.value.route == "typed"
    assert info.value.line == 1 and info.value.column is not None and info.value.column >= 1


def test_substring_never_raises_whatever_the_limits() -> None:
    results = set()
    for start in range(-10, 11):
        results.add(evaluate(f"substring('hello', {start}) = 'he'", CONDITION_MESSAGE))
        for length in range(-10, 11):
            results.add(evaluate(f"substring('hello', {start}, {length}) = 'he'", CONDITION_MESSAGE))
    assert results == {True, False, None}


# ====================================================================== literals and arithmetic (ConditionVisitorTest)


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        ("100", 100.0),
        ("0100", 100.0),
        ("(((3)))", 3.0),
        ("12.34", 12.34),
        ("1.234e1", 12.34),
        ("1.234e+1", 12.34),
        ("1.234e-1", 0.1234),
        ("0xDEADBEEF", 3735928559.0),
        ("0xDeadBeef", 3735928559.0),
        ('"" ', ""),
        ('"Hello! " ', "Hello! "),
        ("'Hello! ' ", "Hello! "),
        (r'"he said, \"Hello!\""', 'he said, "Hello!"'),
        (r'"he said, \"Tch\u00FCss!\""', 'he said, "Tchüss!"'),
        ("3 + 4", 7.0),
        ("3 + 4 * 5", 23.0),
        ("3 + 4 / 4", 4.0),
        ("3 - 4", -1.0),
        ("3 - (4 + 0x10)", -17.0),
        ("3 * 4", 12.0),
        ("3 / 4", 0.75),
        ("3 / 0", math.inf),
        ("-3 / 0", -math.inf),
        ("3 % 4", 3.0),
        ("0 % 3", 0.0),
        ("-1.234", -1.234),
        ("-1.234 + 0.004", -1.23),
        ("-(1.234 + 2)", -3.234),
        ("1 - -2", 3.0),
        # C#-style remainder keeps the dividend's sign
        ("-7 % 3", -1.0),
        ("0xFFFFFFFFFFFFFFFF", -1.0),
        ("'\\'quoted\\''", "'quoted'"),
    ],
)
def test_literal_and_arithmetic_values(condition: str, value: Any) -> None:
    result = compile_condition(condition).value(CONDITION_MESSAGE)
    if isinstance(value, float):
        assert result == pytest.approx(value)
    else:
        assert result == value


@pytest.mark.parametrize(
    ("condition", "value_type"),
    [("3 % 0", "number"), ("0 / 0", "number"), ("undefined", "undefined"), ("0x10000000000000000", "number")],
)
def test_undefined_numbers_are_nan(condition: str, value_type: str) -> None:
    compiled = compile_condition(condition)
    assert compiled.value_type == value_type
    value = compiled.value(CONDITION_MESSAGE)
    assert value is UNDEFINED or math.isnan(value)
    assert compiled.evaluate(CONDITION_MESSAGE) is None


@pytest.mark.parametrize(
    ("condition", "reason", "column"),
    [
        ("\"unterminated = 'unterminated'", "unterminated string", 1),
        ("@32 = 32", "invalid symbol '@'", 1),
        ("32 = [32]", "unexpected token '[32]'", 6),
        ("(@)", "invalid symbol '@'", 2),
        ("test == true", "unexpected token '='", 7),
        ("key1 = 'a' garbage", "unexpected token 'garbage'", 12),
        ("(key1 = 'a'", "unexpected end of condition", 12),
        ("key1 = 'a')", "unexpected token ')'", 11),
        ("3 -1", "unexpected token '-1'", 3),
        ("nosuch(1)", "unknown function 'nosuch'", 1),
        ("key1 > 3", "operator '>' cannot be applied to string and number", 6),
        ("abs('x') > 3", "invalid arguments to function abs(string)", 1),
    ],
)
def test_condition_errors_name_the_position(condition: str, reason: str, column: int) -> None:
    with pytest.raises(RouteError) as info:
        compile_condition(condition, name="c1")
    assert info.value.reason.startswith(reason)
    assert (info.value.line, info.value.column) == (1, column)
    assert str(info.value).startswith(f"route 'c1': {reason}")
    assert str(info.value).endswith(f"at line 1, column {column}")


# ====================================================================== tokens: the official longest-match rules


@pytest.mark.parametrize(
    ("condition", "app", "expected"),
    [
        ("a-b = 'x'", {"a-b": "x"}, True),  # '-' belongs to the name when there is no space
        ("a!=b", {"a!": "x", "b": "x"}, True),  # ... and so does '!'
        ("flag = TRUE", {"flag": "true"}, None),  # literals are lower-case only: TRUE is a property
        ("flag = 'true' aNd NoT (flag = 'false') Or false", {"flag": "true"}, True),  # keywords ignore case
        ("is_DEFINED(flag) AND LOWER(flag) = 'true'", {"flag": "TRUE"}, True),  # so do function names
        ("x = 'a' /* a comment */ AND y = 'b'", {"x": "a", "y": "b"}, True),
        ("'a' || \"b\" = 'ab'", {}, True),
        ("not true = false", {}, True),  # NOT binds tighter than '=': (not true) = false
        ("- 2 * 3 = -6", {}, True),
        ("2 + 3 * 4 = 14 and 10 - 4 - 3 = 3 and 2 * 6 / 3 = 4", {}, True),
    ],
)
def test_tokens_and_precedence(condition: str, app: dict[str, str], expected: bool | None) -> None:
    assert evaluate(condition, message(app=app)) is expected


def test_coalesce_is_the_loosest_operator() -> None:
    with pytest.raises(RouteError, match="operator '\\?\\?' cannot be applied to string and bool"):
        compile_condition("'x' ?? 'y' = 'y'")
    assert evaluate("('x' ?? 'y') = 'x'", message()) is True


# ====================================================================== properties


SYSTEM_PROPERTIES = {
    "messageId": "m-1",
    "correlationId": "c-1",
    "userId": "u-1",
    "to": "/devices/d/messages/events",
    "ack": "full",
    "contentType": "application/json",
    "contentEncoding": "utf-8",
    "connectionDeviceId": "site-1",
    "connectionModuleId": "solar",
    "connectionDeviceGenerationId": "637000000000000000",
    "connectionAuthMethod": '{"scope":"module","type":"sas"}',
    "enqueuedTime": "2024-05-01T12:00:00Z",
}


@pytest.mark.parametrize(("name", "value"), sorted(SYSTEM_PROPERTIES.items()))
def test_system_properties_by_dollar_name(name: str, value: str) -> None:
    msg = message(sys=SYSTEM_PROPERTIES)
    assert compile_condition(f"${name}").value(msg) == value
    assert compile_condition(f"{{${name}}}").value(msg) == value
    assert evaluate(f"${name} = {json.dumps(value)}", msg) is True


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("$connectionModuleId = 'from-app'", True),  # an application property named "$..." wins
        ("{$connectionModuleId} = 'solar'", True),  # braces force the system property
        ("$CONNECTIONMODULEID = 'from-app'", True),  # names are matched without case
        ("connectionModuleId = 'solar'", None),  # a bare name is an application property only
        ("$messageId = 'm-1'", True),  # no such application property: the system property
        ("is_defined($noSuchThing)", False),
        ("is_defined($messageId[0])", False),  # brackets outside $body never name a property
        ("Alert = 'HIGH' and alert = 'HIGH'", True),
        ("$userId = 'u-1' and {$to} = '/devices/d/messages/events'", True),
    ],
)
def test_property_lookup(condition: str, expected: bool | None) -> None:
    msg = message(
        app={"$connectionModuleId": "from-app", "alert": "HIGH"},
        sys={"connectionModuleId": "solar", "messageId": "m-1", "userId": "u-1", "to": "/devices/d/messages/events"},
    )
    assert evaluate(condition, msg) is expected


def test_application_properties_are_strings() -> None:
    msg = message(app={"temperature": "31.5"})
    assert evaluate("temperature = '31.5'", msg) is True
    assert evaluate("as_number(temperature) > 30", msg) is True
    assert evaluate("as_number(temperature) > 40", msg) is False
    with pytest.raises(RouteError, match="operator '>' cannot be applied to string and number"):
        compile_condition("temperature > 30")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42.0),
        ("  -1.5e3 ", -1500.0),
        ("1,000.25", 1000.25),
        ("(12)", -12.0),
        ("7-", -7.0),
        (".5", 0.5),
        ("Infinity", math.inf),
        ("-infinity", -math.inf),
        ("12abc", None),
        ("0x1F", None),
        ("", None),
        ("1_000", None),
    ],
)
def test_as_number_parses_like_dotnet(text: str, expected: float | None) -> None:
    value = compile_condition("as_number(v)").value(message(app={"v": text}))
    if expected is None:
        assert math.isnan(value)
    else:
        assert value == expected


# ============================================================ $body queries (BodyQueryTest, BodyQueryI18NTest)

WEATHER_BODY = json.dumps(
    {
        "message": {
            "Weather": {
                "Temperature": 50,
                "FreezingTemperature": -50.4,
                "PreciseTemperature": 50.4,
                "Temperature_PropertyConflict": 50,
                "NullValue": None,
                "Time": "2017-03-09T00:00:00.000Z",
                "PrevTemperatures": [20, 30, 40],
                "IsEnabled": True,
                "IsDisabled": False,
                "Location": {"Street": "One Microsoft Way", "City": "Redmond", "State": "WA"},
                "HistoricalData": [{"Month": "Feb", "Temperature": 40}, {"Month": "Jan", "Temperature": 30}],
            }
        }
    }
)
WEATHER_MESSAGE = message(
    body=WEATHER_BODY,
    app={
        "City": "Redmond",
        "$State": "WA",
        "$body.message.Weather.Temperature_PropertyConflict": "100",
        "IntegerProperty": "110",
    },
    sys={"State": "CA", "$body.message.Weather.Location.State": "CA", "contentEncoding": "UTF-8",
         "contentType": "application/json"},
)

BODY_CASES: list[tuple[str, bool | None]] = [
    *[
        (c, True)
        for c in [
            "50 >= $body.message.Weather.Temperature",
            "$BODY.message.Weather.Temperature >= 50",
            "$bODy.message.Weather.Temperature <= 50",
            "$bODY.message.Weather.Temperature = 50",
            "$BoDY.message.Weather.Temperature != 60",
            "$body.message.Weather.Temperature <> 500",
            "$body.message.Weather.Temperature = 40 + 10",
            "$body.message.Weather.Temperature >= $body.message.Weather.PrevTemperatures[0]",
            "$body.message.Weather.Temperature >= $body.message.Weather.PrevTemperatures[0]"
            " + $body.message.Weather.PrevTemperatures[1] ",
            "$body.message.Weather.PrevTemperatures[0] + $body.message.Weather.PrevTemperatures[1]= 50 ",
            "$body.message.Weather.PrevTemperatures[1] * $body.message.Weather.PrevTemperatures[2] = 1200",
            "$body.message.Weather.PrevTemperatures[1] / $body.message.Weather.PrevTemperatures[0] = 1.5",
            "$body.message.Weather.HistoricalData[0].Temperature - 10"
            " = $body.message.Weather.HistoricalData[1].Temperature",
            "$body.message.Weather.HistoricalData[0].Month = 'Feb'",
        ]
    ],
    *[
        (c, False)
        for c in [
            "10 >= $body.message.Weather.Temperature",
            "$body.message.Weather.Temperature < 50",
            "$body.message.Weather.Temperature = '50'",  # no conversion between JSON types
            "$body.message.Weather.Temperature != 50",
            "$body.message.Weather.Temperature = 60",
            "$body.message.Weather.Temperature <> 40 + 10",
            "$body.message.Weather.Temperature <= $body.message.Weather.PrevTemperatures[0]",
            "$body.message.Weather.Temperature < $body.message.Weather.PrevTemperatures[0]"
            " + $body.message.Weather.PrevTemperatures[1]",
            "$body.message.Weather.PrevTemperatures[0] + $body.message.Weather.PrevTemperatures[1] <> 50 ",
            "$body.message.Weather.PrevTemperatures[0] * $body.message.Weather.PrevTemperatures[1] = 610",
            "$body.message.Weather.PrevTemperatures[1] / $body.message.Weather.PrevTemperatures[0] = 3/3",
            "$body.message.Weather.HistoricalData[0].Temperature + 10"
            " = $body.message.Weather.HistoricalData[1].Temperature",
        ]
    ],
    # strings
    ("$body.message.Weather.Temperature <> '100'", True),
    ("$body.message.Weather.Location.City = City", True),
    ("$body.message.Weather.Location.State = $State", True),
    ("$body.message.Weather.Location.State <> $body.message.Weather.Location.City", True),
    ("$body.message.Weather.Temperature ='100'", False),
    ("$body.message.Weather.Temperature ='150'", False),
    ("$body.message.Weather.Location.City != City", False),
    ("$body.message.Weather.Location.State != $State", False),
    ("$body.message.Weather.Location.State = City", False),
    ("$body.message.Weather.Location.State = $body.message.Weather.Location.City", False),
    # booleans and logic
    ("$body.message.Weather.IsEnabled", True),
    ("$body.message.Weather.IsEnabled = true", True),
    ("$body.message.Weather.IsDisabled = false", True),
    ("$body.message.Weather.IsDisabled <> true", True),
    ("NOT $body.message.Weather.IsDisabled", True),
    ("$body.message.Weather.InvalidKey <> '100'", True),
    ("$body.message.Weather.IsEnabled AND $body.message.Weather.IsEnabled", True),
    ("$body.message.Weather.IsEnabled OR $body.message.Weather.IsDisabled", True),
    ("$body.message.Weather.IsDisabled OR NOT($body.message.Weather.IsDisabled)", True),
    # undefined
    ("$body", None),
    ("$body.message.Weather.HistoricalData[0].Temperature.InvalidKey", None),
    ("$City <> $body.message.Weather.InvalidKey", None),
    # an application property spelled like the query wins; braces force the body
    ("$body.message.Weather.Temperature_PropertyConflict = '100'", True),
    ("as_number($body.message.Weather.Temperature_PropertyConflict) = 100", True),
    ("{$body.message.Weather.Temperature_PropertyConflict} <> 100", True),
    ("$body.message.Weather.Location.State = 'WA'", True),
    ("{$body.message.Weather.Location.State} <> 'CA'", True),
    # dates (the official JSON reader turns them into dates) and objects are not usable
    ("$body.message.Weather.Time <> '100'", None),
    ("$body.message.Weather <> null", None),
    # null: a JSON null, or a path that selects nothing
    ("$body.message.Weather.NullValue = null", True),
    ("$body.message.Temperature = null", True),
    ("$body.message.Weather.Temperature != null", True),
    ("$body.message.Weather.Location.State <> null", True),
    ("$body.message.Weather.InvalidProperty = null", True),
    ("NOT ($body.message.Weather.InvalidProperty != null)", True),
    # built-in functions on body values
    *[
        (c, True)
        for c in [
            "abs($body.message.Weather.FreezingTemperature) = 50.4",
            "ceiling(as_number($body.message.Weather.PreciseTemperature)) = 51",
            "concat($body.message.Weather.Location.Street, ', ', $body.message.Weather.Location.City, ', ',"
            " $body.message.Weather.Location.State) = 'One Microsoft Way, Redmond, WA'",
            "contains($body.message.Weather.Location.Street, 'Microsoft')",
            "ends_with($body.message.Weather.Location.Street, 'Way')",
            "exp(($body.message.Weather.Temperature - 49)) < ($body.message.Weather.Temperature - 47)",
            "index_of($body.message.Weather.Location.Street, 'Way') > 6",
            "is_defined($body.message.Weather.Location.Street)",
            "is_null($body.message.Weather.NullValue)",
            "is_string($body.message.Weather.Location.Street)",
            "length($body.message.Weather.Location.State) = 2",
            "lower($body.message.Weather.Location.State) = 'wa'",
            "power($body.message.Weather.Temperature, 2) = 2500.0",
            "power($body.message.Weather.Temperature, length($body.message.Weather.Location.State)) = 2500.0",
            "sign($body.message.Weather.FreezingTemperature) = -1",
            "square($body.message.Weather.Temperature) = 2500",
            "power($body.message.Weather.Temperature, length($body.message.Weather.Location.State))"
            " = square($body.message.Weather.Temperature)",
            "starts_with($body.message.Weather.Location.Street, 'One')",
            "substring($body.message.Weather.Location.Street, length($body.message.Weather.Location.Street) - 3)"
            " = 'Way'",
            "substring($body.message.Weather.Location.Street, 4, length('Microsoft')) = 'Microsoft'",
            "upper($body.message.Weather.Location.Street) = 'ONE MICROSOFT WAY'",
        ]
    ],
    # wrong dynamic types give undefined, never an error
    ("abs($body.message.Weather.Location.City) = 1", None),
    ("upper($body.message.Weather.Temperature) = 'X'", None),
    ("$body.message.Weather.Location.City + 1 = 2", None),
    ("$body.message.Weather.IsEnabled AND $body.message.Weather.Location.City", None),
]


@pytest.mark.parametrize(("condition", "expected"), BODY_CASES)
def test_body_query(condition: str, expected: bool | None) -> None:
    assert evaluate(condition, WEATHER_MESSAGE) is expected


I18N_MESSAGE = message(
    body=json.dumps(
        {
            "Welcome!": {"he": "ברוכים הבאים!", "es": "Bienvenido!"},
            "I'm using spaces %1": {"he": "אני משתמש ב%1", "es": "Estoy usando %1"},
            "I'mnotusingspaces%1": {"he": "אני משתמש ב%1", "es": "Estoy usando %1"},
        },
        ensure_ascii=False,
    ),
    sys={"contentEncoding": "UTF-8", "contentType": "application/json"},
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("$body.Welcome!.he = 'ברוכים הבאים!'", True),
        ("$body.I'mnotusingspaces%1.es = 'Estoy usando %1'", True),
        ("$body.Welcome!.I'mnotusingspaces%1.es = 'Estoy usando %1'", False),
    ],
)
def test_body_query_international(condition: str, expected: bool) -> None:
    assert evaluate(condition, I18N_MESSAGE) is expected


@pytest.mark.parametrize(
    "condition",
    [
        "$body.properties[]",
        "$body.properties[1:2]",
        "$body;@",
        "$body.Welcome!['I'm using spaces %1'] = 'ברוכים הבאים!'",
        "$body. = 1",
        "$body.a..b = 1",
        "$body.0 = 1",
        "$body.a % 2 = 0",  # '%' and unary '-' are not defined for body values
        "-$body.a = 1",
        "true AND $body.flag",  # the official check wants a body value on the left of AND/OR
    ],
)
def test_body_query_rejected_at_load(condition: str) -> None:
    with pytest.raises(RouteError, match=r"^route 'condition': .* at line 1, column \d+$"):
        compile_condition(condition)


@pytest.mark.parametrize(
    ("sys", "body", "expected"),
    [
        (JSON_SYS, '{"a": {"b": [1, {"c": 5}]}}', True),
        ({"contentType": "APPLICATION/JSON", "contentEncoding": "UTF-8"}, '{"a": {"b": [1, {"c": 5}]}}', True),
        ({"contenttype": "application/json", "CONTENTENCODING": "utf-8"}, '{"a": {"b": [1, {"c": 5}]}}', True),
        ({"contentType": "application/json", "contentEncoding": "utf-16"},
         '{"a": {"b": [1, {"c": 5}]}}'.encode("utf-16-le"), True),
        ({"contentType": "application/json", "contentEncoding": "utf-32"},
         '{"a": {"b": [1, {"c": 5}]}}'.encode("utf-32-le"), True),
        # anything but JSON in a supported encoding: undefined
        ({"contentType": "text/plain", "contentEncoding": "utf-8"}, '{"a": {"b": [1, {"c": 5}]}}', None),
        ({"contentType": "application/json; charset=utf-8", "contentEncoding": "utf-8"}, '{"a": {"b": [1, {"c": 5}]}}',
         None),
        ({"contentType": "application/json"}, '{"a": {"b": [1, {"c": 5}]}}', None),
        ({"contentEncoding": "utf-8"}, '{"a": {"b": [1, {"c": 5}]}}', None),
        ({"contentType": "application/json", "contentEncoding": "latin-1"}, '{"a": {"b": [1, {"c": 5}]}}', None),
        ({}, '{"a": {"b": [1, {"c": 5}]}}', None),
        (JSON_SYS, "not json", None),
        (JSON_SYS, "[1, 2, 3]", None),
        (JSON_SYS, "", None),
    ],
)
def test_body_needs_json_content_type_and_encoding(
    sys: dict[str, str], body: str | bytes, expected: bool | None
) -> None:
    assert evaluate("$body.a.b[1].c = 5", message(body=body, sys=sys)) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("$body.m[0][1] = 2", True),  # a second index after the validated prefix, as the JSON engine allows
        ("$body.m[0]['k'] = 'v'", False),  # m[0] is an array: no 'k' in it, so null, and null <> 'v'
        ("$body.m[1]['k'] = 'v'", True),
        ("$body.m[5] = null", True),  # out of range selects nothing
        ("is_defined($body.m[5])", True),  # ... which is null, not undefined
        ("is_null($body.m[5])", False),  # official quirk: only a JSON value (any, even null) counts
        ("is_null($body.n)", True),
        ("$body.big > 1e300", True),
        ("$body.when = '2024-01-01T00:00:00'", None),  # taken for a date
        ("$body.notwhen = '2024-13-01T00:00:00'", True),  # not a valid date: stays a string
        ("$body.t < 'a'", True),  # different JSON types order bool < number < string < null
        ("$body.t < 1", True),
    ],
)
def test_body_query_details(condition: str, expected: bool | None) -> None:
    body = {
        "m": [[1, 2], {"k": "v"}],
        "n": None,
        "big": 10**400,
        "when": "2024-01-01T00:00:00",
        "notwhen": "2024-13-01T00:00:00",
        "t": True,
    }
    assert evaluate(condition, message(body=json.dumps(body), sys=JSON_SYS)) is expected


def test_body_value_reports_null_and_undefined() -> None:
    msg = message(body='{"a": null, "o": {"x": 1}}', sys=JSON_SYS)
    assert compile_condition("$body.a").value(msg) is NULL
    assert compile_condition("$body.missing").value(msg) is NULL
    assert compile_condition("$body.o").value(msg) is UNDEFINED
    assert compile_condition("$body.o").value_type == "$body value"


def test_body_is_parsed_at_most_once_per_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    original = route_types._load_json_body  # the evaluation context reads bodies through it

    def counting(content_type: Any, content_encoding: Any, body: bytes) -> Any:
        calls.append(body)
        return original(content_type, content_encoding, body)

    monkeypatch.setattr(route_types, "_load_json_body", counting)
    table = RouteTable.from_manifest(
        {
            "hot": "FROM /messages/* WHERE $body.temp > 80 INTO $upstream",
            "cold": 'FROM /messages/* WHERE $body.temp < 0 INTO BrokeredEndpoint("/modules/heater/inputs/cold")',
            "any": 'FROM /messages/* WHERE is_defined($body.temp) INTO BrokeredEndpoint("/modules/log/inputs/all")',
            "other": "FROM /twinChangeNotifications WHERE $body.x = 1 INTO $upstream",
            "plain": 'FROM /messages/* INTO BrokeredEndpoint("/modules/archive/inputs/all")',
        }
    )
    hot = message("/messages/modules/sensor/outputs/out", '{"temp": 95}', sys=JSON_SYS)
    assert [route.name for _, route in table.evaluate(hot)] == ["hot", "any", "plain"]
    assert len(calls) == 1
    assert [route.name for _, route in table.evaluate(message("/twinChangeNotifications"))] == []
    assert len(calls) == 2
    only_plain = RouteTable.from_manifest({"plain": "FROM /messages/* INTO $upstream"})
    assert len(only_plain.evaluate(hot)) == 1
    assert len(calls) == 2


# ====================================================================== twin_change_includes (TwinChangeIncludesTest)

TWIN_BODY = json.dumps(
    {
        "properties": {
            "reported": {
                "WeatherTwin": {
                    "Temperature": 50,
                    "Location": {"Street": "One Microsoft Way", "City": "Redmond", "State": "WA"},
                },
                "Metadata": "metadata",
                "$metadata": {"$lastUpdated": "2017-02-15T00:42:19.8563501Z"},
                "$version": 4,
            }
        }
    }
)
TWIN_MESSAGE = message(TWIN, TWIN_BODY, sys={"contentEncoding": "UTF-8", "contentType": "application/json"})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("twin_change_includes(properties.reported.WeatherTwin)", True),
        ("TWIN_CHANGE_INCLUDES(properties.reported.WeatherTwin)", True),
        ("Twin_Change_Includes(properties.reported.WeatherTwin)", True),
        ("twin_CHANGE_includes(properties.reported.WeatherTwin)", True),
        ("twin_change_includes(properties.reported.WeatherTwin.Temperature)", True),
        ("twin_change_includes(properties.reported.WeatherTwin.Location)", True),
        ("twin_change_includes(properties.reported.WeatherTwin.Location.Street)", True),
        ("twin_change_includes(properties.reported.WeatherTwin.Location.City)", True),
        ("twin_change_includes(properties.reported.WeatherTwin.Location.City) AND "
         "twin_change_includes(properties.reported.WeatherTwin.Temperature)", True),
        ("twin_change_includes(properties.reported.WeatherTwin.Location.City) AND "
         "twin_change_includes(properties.reported.WeatherTwin.Temperature) = true", True),
        ("twin_change_includes(properties.reported.WeatherTwin.Location.City) AND "
         "Not(twin_change_includes(properties.reported.WeatherTwin.Temperature123))", True),
        ("twin_change_includes(properties.desired.WeatherTwin)", False),
        ("twin_change_includes(properties.reported.WeatherTwin.Location.City) AND "
         "twin_change_includes(properties.reported.WeatherTwin.Temperature123)", False),
    ],
)
def test_twin_change_includes(condition: str, expected: bool) -> None:
    assert evaluate(condition, TWIN_MESSAGE, source=TWIN) is expected


@pytest.mark.parametrize("body", [b"", b"random message", TWIN_BODY.encode("utf-16-le")])
def test_twin_change_includes_on_an_unreadable_body_is_undefined(body: bytes) -> None:
    msg = message(TWIN, body, sys={"contentEncoding": "UTF-8", "contentType": "application/json"})
    assert evaluate("twin_change_includes(properties.reported.WeatherTwin)", msg, source=TWIN) is None


@pytest.mark.parametrize(
    "condition",
    [
        "twin_change_includes()",
        "twin_change_includes(      )",
        "twin_change_includes(properties.)",
        "twin_change_includes(123123)",
        "twin_change_includes(properties.abcd123)",
        "twin_change_includes(123abc)",
        "twin_change_includes(properties.desired.twin,,,,,)",
        "twin_change_includes(properties[0])",
        "twin_change_includes(properties.desired.twin[0].test1)",
        "twin_change_includes(properties.desired.[123])",
        "twin_change_includes(properties.desired.WeatherTwin[])",
        "twin_change_includes(properties[])",
        "twin_change_includes(properties[123].)",
        "twin_change_includes(properties[123].props11.)",
        "twin_change_includes(properties[123].props11, abc)",
    ],
)
def test_twin_change_includes_rejected(condition: str) -> None:
    with pytest.raises(RouteError, match=r"at line 1, column \d+$"):
        compile_condition(condition, source=TWIN)


def test_twin_change_includes_needs_a_twin_change_route() -> None:
    with pytest.raises(RouteError, match="only available in routes FROM /twinChangeNotifications"):
        parse_route("t", "FROM /messages WHERE twin_change_includes(properties.reported.x) INTO $upstream")
    route = parse_route("t", "FROM /twinChangeNotifications WHERE twin_change_includes(properties.reported.WeatherTwin)"
                             " INTO $upstream")
    assert route.matches(TWIN_MESSAGE)


# ====================================================================== whole routes (RouteFactoryTest)


@pytest.mark.parametrize(
    ("text", "source", "condition", "endpoint"),
    [
        ('FROM /* INTO brokeredEndpoint("/modules/alertLogic/inputs/in")', "/*", "true",
         Endpoint("module_input", "alertLogic", "in")),
        ("FROM /* INTO brokeredEndpoint('/modules/alertLogic/inputs/in')", "/*", "true",
         Endpoint("module_input", "alertLogic", "in")),
        ("FROM /* INTO brokeredEndpoint('/modules/alert\"Logic/inputs/in')", "/*", "true",
         Endpoint("module_input", 'alert"Logic', "in")),
        ('FROM /* INTO brokeredEndpoint("/modules/alert\'Logic/inputs/in")', "/*", "true",
         Endpoint("module_input", "alert'Logic", "in")),
        ('FROM /messages/modules/adapter INTO brokeredEndpoint("/modules/alertLogic/inputs/in")',
         "/messages/modules/adapter", "true", Endpoint("module_input", "alertLogic", "in")),
        ('FROM /messages/modules/alertLogic/outputs/commands INTO brokeredEndpoint("/modules/adapter/inputs/write")',
         "/messages/modules/alertLogic/outputs/commands", "true", Endpoint("module_input", "adapter", "write")),
        ('FROM /messages INTO brokeredEndpoint("/modules/alertLogic/inputs/in1")', "/messages", "true",
         Endpoint("module_input", "alertLogic", "in1")),
        ('FROM /messages/modules WHERE messageType = "alert" INTO brokeredEndpoint("/modules/alertLogic/inputs/in")',
         "/messages/modules", 'messageType = "alert"', Endpoint("module_input", "alertLogic", "in")),
        ('   FROM /messages/modules/adapter WHERE messageType = "alert" AND alert = "imp" '
         'INTO brokeredEndpoint("/a/b/c/d")   ',
         "/messages/modules/adapter", 'messageType = "alert" AND alert = "imp"', Endpoint("module_input", "b", "d")),
        ('FROM /messages/modules/alertLogic/outputs/commands WHERE messageType = "alert" AND ( as_number(temp) > 100 '
         'OR as_number(humidity) = 50 OR place = "basement") INTO brokeredEndpoint("/modules/adapter/inputs/write")',
         "/messages/modules/alertLogic/outputs/commands",
         'messageType = "alert" AND ( as_number(temp) > 100 OR as_number(humidity) = 50 OR place = "basement")',
         Endpoint("module_input", "adapter", "write")),
        ("  FROM /messages WHERE    messageType = \"alert\" AND humidity = 'high' INTO "
         'brokeredEndpoint("/modules/alertLogic/inputs/in1")',
         "/messages", "messageType = \"alert\" AND humidity = 'high'", Endpoint("module_input", "alertLogic", "in1")),
        (" SELECT * FROM /messages WHERE    messageType = \"alert\" AND humidity = 'high' INTO $upstream",
         "/messages", "messageType = \"alert\" AND humidity = 'high'", UPSTREAM),
        ("FROM /* INTO $upstream", "/*", "true", UPSTREAM),
        ("FROM /messages/modules/adapter INTO $upstream", "/messages/modules/adapter", "true", UPSTREAM),
        ("select * from /messages/* where true into $UPSTREAM", "/messages/*", "true", UPSTREAM),
        ("FROM /messages/*\n  WHERE NOT is_defined($connectionModuleId)\n  INTO $upstream", "/messages/*",
         "NOT is_defined($connectionModuleId)", UPSTREAM),
        ('FROM /messages/modules/solar/outputs/* INTO BROKEREDENDPOINT("modules/controller/inputs/pv/")',
         "/messages/modules/solar/outputs/*", "true", Endpoint("module_input", "controller", "pv")),
    ],
)
def test_parse_route(text: str, source: str, condition: str, endpoint: Endpoint) -> None:
    route = parse_route("r", text)
    assert (route.name, route.text, route.source, route.condition) == ("r", text, source, condition)
    assert route.endpoint == endpoint
    assert (route.priority, route.ttl_secs) == (DEFAULT_PRIORITY, 0)


@pytest.mark.parametrize(
    "text",
    [
        'FORM /messages/modules/adapter INTO brokeredEndpoint("/modules/alertLogic/inputs/in")',
        'SELECT FROM /messages/modules/adapter INTO brokeredEndpoint("/modules/alertLogic/inputs/in")',
        'FROM INTO brokeredEndpoint("/modules/alertLogic/inputs/in")',
        "FROM /* INTO brokeredEndpoint(\"/modules/alertLogic/inputs/in')",
        "FROM /* INTO brokeredEndpoint('/modules/alertLogic/inputs/in\")",
        'FROM /* INTO brokeredEndpoint(""/modules/alertLogic/inputs/in"")',
        "FROM /* INTO brokeredEndpoint(''/modules/alertLogic/inputs/in'')",
        "FROM /* INTO brokeredEndpoint('\"/modules/alertLogic/inputs/in'\")",
        "FROM /* INTO brokeredEndpoint(\"'/modules/alertLogic/inputs/in\"')",
        'FROM /messages WHERE temp == 100 INTO brokeredEndpoint("/modules/alertLogic/inputs/in")',
        'FROM /messages WHERE INTO brokeredEndpoint("/modules/alertLogic/inputs/in")',
        "FROM /messages WHERE temp = 'high' INTO",
        'FROM /messages INTO brokeredEndpoint("/modules/alertLogic/inputs/in"',
        'FROM /messages INTO brokeredEndpoint("/modules/alertLogic/inputs/in)',
        'FROM /messages INTO brokeredEndpoint "/modules/alertLogic/inputs/in")',
        'FROM /messages INTO brokeredEndpoint(/modules/alertLogic/inputs/in")',
        'FROM /messages INTO "/modules/alertLogic/inputs/in"',
        "FROM /messages INTO /modules/alertLogic/inputs/in",
        "FROM /messages INTO upstream",
        "FROM /messages INTO $upstream $upstream",
        "FROM /messages/ INTO $upstream",
        "FROM messages INTO $upstream",
        "FROM / INTO $upstream",
    ],
)
def test_invalid_route_syntax(text: str) -> None:
    with pytest.raises(RouteError) as info:
        parse_route("broken", text)
    error = info.value
    assert error.route == "broken"
    assert error.line is not None and error.column is not None
    assert str(error).startswith("route 'broken': ")
    assert str(error).endswith(f" at line {error.line}, column {error.column}")


@pytest.mark.parametrize(
    ("text", "message_text", "line", "column"),
    [
        # bad keyword
        ("FROM /messages/modules/sensor WHERE $connectionModuleId = 'sensor' INTOO $upstream",
         "unexpected token 'INTOO'", 1, 68),
        ("FROM /messages/*\nWHERE true\nSEND $upstream", "unexpected token 'SEND'", 3, 1),
        ("FORM /messages INTO $upstream", "unexpected token 'FORM' (expected FROM or SELECT)", 1, 1),
        ("FROM /messages WHERE a = 'x'", "unexpected end of route", 1, 29),
        # bad sink
        ("FROM /messages INTO $downstream", "unsupported system endpoint '$downstream'", 1, 21),
        ('FROM /messages INTO ModuleEndpoint("/modules/a/inputs/b")', "unsupported endpoint function 'ModuleEndpoint'",
         1, 21),
        ("FROM /messages INTO upstream", "unexpected end of route (expected '(')", 1, 29),
        # bad BrokeredEndpoint path: exactly four segments
        ('FROM /messages INTO BrokeredEndpoint("/modules/a/inputs")', "BrokeredEndpoint address", 1, 38),
        ('FROM /messages INTO BrokeredEndpoint("/modules/a/inputs/b/c")', "BrokeredEndpoint address", 1, 38),
        ('FROM /messages INTO BrokeredEndpoint("   ")', "BrokeredEndpoint address", 1, 38),
        ('FROM /messages INTO BrokeredEndpoint("")', "BrokeredEndpoint address", 1, 38),
        # semantic errors in the condition point at the operator or function
        ("FROM /messages WHERE temp > 100 INTO $upstream", "operator '>' cannot be applied to string and number",
         1, 27),
        ("FROM /messages\n  WHERE is_defined(a) and abs(b) = 1\n  INTO $upstream",
         "invalid arguments to function abs(string)", 2, 27),
        ("FROM /messages WHERE frobnicate(a) INTO $upstream", "unknown function 'frobnicate'", 1, 22),
    ],
)
def test_route_error_names_route_and_position(text: str, message_text: str, line: int, column: int) -> None:
    with pytest.raises(RouteError) as info:
        parse_route("toController", text)
    assert str(info.value).startswith(f"route 'toController': {message_text}")
    assert str(info.value).endswith(f"at line {line}, column {column}")
    assert (info.value.route, info.value.line, info.value.column) == ("toController", line, column)


@pytest.mark.parametrize(
    ("spec", "priority", "ttl"),
    [
        ("FROM /messages INTO $upstream", DEFAULT_PRIORITY, 0),
        ({"route": "FROM /messages INTO $upstream"}, DEFAULT_PRIORITY, 0),
        ({"route": "FROM /messages INTO $upstream", "priority": 0}, 0, 0),
        ({"route": "FROM /messages INTO $upstream", "priority": 9, "timeToLiveSecs": 3600}, 9, 3600),
        ({"route": "FROM /messages INTO $upstream", "priority": DEFAULT_PRIORITY}, DEFAULT_PRIORITY, 0),
        ({"route": "FROM /messages INTO $upstream", "timeToLiveSecs": 0}, DEFAULT_PRIORITY, 0),
        ({"route": "FROM /messages INTO $upstream", "timeToLiveSecs": 4294967295}, DEFAULT_PRIORITY, 4294967295),
        ({"Route": "FROM /messages INTO $upstream", "Priority": 3, "TimeToLiveSecs": 5}, 3, 5),
        ({"route": "FROM /messages INTO $upstream", "priority": "4"}, 4, 0),
    ],
)
def test_route_objects(spec: str | dict[str, Any], priority: int, ttl: int) -> None:
    route = parse_route("r", spec)
    assert (route.priority, route.ttl_secs) == (priority, ttl)
    assert route.endpoint == UPSTREAM


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"route": "FROM /messages INTO $upstream", "priority": 10}, "priority must be between 0 and 9, got 10"),
        ({"route": "FROM /messages INTO $upstream", "priority": -1}, "priority must be an unsigned integer, got -1"),
        ({"route": "FROM /messages INTO $upstream", "priority": "high"}, "priority must be an unsigned integer"),
        ({"route": "FROM /messages INTO $upstream", "priority": True}, "priority must be an unsigned integer"),
        ({"route": "FROM /messages INTO $upstream", "priority": None}, "priority must be an unsigned integer"),
        ({"route": "FROM /messages INTO $upstream", "priority": 2.5}, "priority must be an unsigned integer"),
        ({"route": "FROM /messages INTO $upstream", "timeToLiveSecs": -5}, "timeToLiveSecs must be an unsigned"),
        ({"route": "FROM /messages INTO $upstream", "timeToLiveSecs": 2**32}, "timeToLiveSecs must be an unsigned"),
        ({"priority": 1}, 'a route object needs a "route" string'),
        ({"route": 42}, 'a route object needs a "route" string'),
        ("   ", "the route is empty"),
        (["FROM /messages INTO $upstream"], "a route must be a string or an object, not list"),
    ],
)
def test_bad_route_objects(spec: Any, reason: str) -> None:
    with pytest.raises(RouteError) as info:
        parse_route("prio", spec)
    assert str(info.value).startswith(f"route 'prio': {reason}")
    assert info.value.route == "prio"


def test_endpoint_text() -> None:
    assert str(UPSTREAM) == "$upstream"
    assert str(Endpoint("module_input", "m", "i")) == 'BrokeredEndpoint("/modules/m/inputs/i")'
    assert len({Endpoint("module_input", "m", "i"), Endpoint("module_input", "m", "i"), UPSTREAM}) == 2


def test_route_matches_needs_source_and_a_true_condition() -> None:
    route = parse_route("alerts", "FROM /messages/modules/* WHERE level = 'high' INTO $upstream")
    assert route.matches(message("/messages/modules/a/outputs/o", app={"level": "high"}))
    assert not route.matches(message("/messages/modules/a/outputs/o", app={"level": "low"}))
    assert not route.matches(message("/messages/modules/a/outputs/o"))  # undefined does not route
    assert route.evaluate_condition(message("/messages/modules/a/outputs/o")) is None
    assert not route.matches(message("/messages", app={"level": "high"}))
    assert route.evaluate_condition(message("/messages", app={"level": "high"})) is True


# ====================================================================== route tables: priorities and TTL


def endpoints(result: list[tuple[Endpoint, Route]]) -> list[tuple[str, str, int, int]]:
    return [(str(endpoint), route.name, route.priority, route.ttl_secs) for endpoint, route in result]


CONTROLLER = 'BrokeredEndpoint("/modules/controller/inputs/in")'


def test_same_endpoint_is_delivered_once_with_the_most_urgent_route() -> None:
    table = RouteTable.from_manifest(
        {
            "bulk": {"route": f"FROM /messages/* INTO {CONTROLLER}", "priority": 5, "timeToLiveSecs": 60},
            "urgent": {"route": f"FROM /messages/* WHERE alarm = 'on' INTO {CONTROLLER}", "priority": 1,
                       "timeToLiveSecs": 10},
            "legacy": f"FROM /messages/* INTO {CONTROLLER}",
            "cloud": "FROM /messages/* INTO $upstream",
            "cloud-fast": {"route": "FROM /messages/modules/pv/* INTO $upstream", "priority": 0},
        }
    )
    assert [r.name for r in table.routes] == ["bulk", "urgent", "legacy", "cloud", "cloud-fast"]
    alarm = message("/messages/modules/pv/outputs/out", app={"alarm": "on"})
    assert endpoints(table.evaluate(alarm)) == [
        (CONTROLLER, "urgent", 1, 10),
        ("$upstream", "cloud-fast", 0, 0),
    ]
    quiet = message("/messages/modules/battery/outputs/out", app={"alarm": "off"})
    assert endpoints(table.evaluate(quiet)) == [
        (CONTROLLER, "bulk", 5, 60),
        ("$upstream", "cloud", DEFAULT_PRIORITY, 0),
    ]


def test_equal_priorities_keep_the_first_route() -> None:
    table = RouteTable.from_manifest(
        {
            "first": {"route": "FROM /messages/* INTO $upstream", "priority": 3, "timeToLiveSecs": 1},
            "second": {"route": "FROM /messages/* INTO $UPSTREAM", "priority": 3, "timeToLiveSecs": 2},
        }
    )
    assert endpoints(table.evaluate(message())) == [("$upstream", "first", 3, 1)]


def test_distinct_endpoints_each_get_the_message() -> None:
    table = RouteTable.from_manifest(
        {
            "a": 'FROM /messages/* INTO BrokeredEndpoint("/modules/m/inputs/a")',
            "b": 'FROM /messages/* INTO BrokeredEndpoint("/modules/m/inputs/b")',
            "a-again": 'FROM /messages/* INTO BrokeredEndpoint("modules/m/inputs/a/")',
            "none": 'FROM /twinChangeNotifications INTO BrokeredEndpoint("/modules/m/inputs/c")',
        }
    )
    result = table.evaluate(message("/messages/modules/x"))
    assert [(e.kind, e.module_id, e.input_name, r.name) for e, r in result] == [
        ("module_input", "m", "a", "a"),
        ("module_input", "m", "b", "b"),
    ]
    assert table.evaluate(message("/devices/x")) == []


def test_ttl_defaults_to_zero_meaning_the_global_store_ttl() -> None:
    table = RouteTable.from_manifest(
        {"plain": "FROM /messages INTO $upstream", "object": {"route": "FROM /messages INTO $upstream"}}
    )
    assert [(r.ttl_secs, r.priority) for r in table.routes] == [(0, DEFAULT_PRIORITY), (0, DEFAULT_PRIORITY)]
    ((endpoint, route),) = table.evaluate(message())
    assert (endpoint, route.name, route.ttl_secs) == (UPSTREAM, "plain", 0)


def test_from_manifest_reports_the_first_bad_route() -> None:
    with pytest.raises(RouteError) as info:
        RouteTable.from_manifest(
            {
                "good": "FROM /messages INTO $upstream",
                "bad": "FROM /messages WHERE x = INTO $upstream",
                "worse": "nonsense",
            }
        )
    assert info.value.route == "bad"
    assert str(info.value) == "route 'bad': unexpected token 'INTO' at line 1, column 26"
    with pytest.raises(RouteError, match=r"^route '': a route needs a non-empty name$"):
        RouteTable.from_manifest({"": "FROM /messages INTO $upstream"})
    assert RouteTable.from_manifest({}).evaluate(message()) == []
