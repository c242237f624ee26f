"""The route grammar's lexer (longest match, as edgeHub cuts tokens) and its LALR parser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from typing import Any, Final

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

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
