"""The condition compiler: a parse tree into a typed tree of small closures, checked once."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from lark import Token, Tree

from energy_edge.hub.routing.jsonpath import _json_path_error, _json_path_steps, _query_value, _select
from energy_edge.hub.routing.lexer import _CompileError
from energy_edge.hub.routing.types import _ABSENT, _BAD_BODY, _MISSING_PATH, NULL, UNDEFINED, _Ctx
from energy_edge.hub.routing.values import (
    _B,
    _BUILTINS,
    _COMPARE_OPS,
    _D,
    _N,
    _Q,
    _S,
    _TWIN_CHANGE_INCLUDES,
    _TWIN_CHANGE_PREFIXES,
    _TWIN_CHANGE_SOURCE,
    _U,
    _and3,
    _as_query,
    _constant,
    _derive,
    _div,
    _hex_value,
    _matches,
    _mod,
    _Node,
    _or3,
    _q_from_string,
    _query_order,
    _unescape,
)

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
