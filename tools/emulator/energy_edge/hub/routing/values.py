"""Static types, value conversions, three-valued logic, comparisons and the built-in functions."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from energy_edge.hub.routing.types import _MISSING_PATH, _NULL_STRING, NULL, UNDEFINED

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
