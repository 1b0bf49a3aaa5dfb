"""Flux's own envsubst tests (vendored in flux/, see SOURCES.tsv), read from the Go sources.

``eval_test.go``'s tables (TestExpand: every variable exists, missing ones read as ""; TestExpandStrict: the
strict mapping, ``wantErr: errVarNotSet`` is a "variable not set (strict mode)" error) and ``funcs_test.go``'s
``got, want := toX(args...), "want"`` assertions are parsed from the Go text with a small Go literal reader
(strings, raw strings, ``map[string]string{...}``, identifiers), so the suite is Flux's, not a transcription.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).parent / "flux"
_TOKEN = re.compile(
    r'\s+|//[^\n]*|/\*.*?\*/|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)|(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)'
    r"|(?P<punct>[{}\[\](),:=]|:=)",
    re.S,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def go_string(literal: str) -> str:
    """The value of a Go interpreted ("...") or raw (`...`) string literal."""
    if literal.startswith("`"):
        return literal[1:-1].replace("\r", "")
    body, out, index = literal[1:-1], bytearray(), 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out += char.encode("utf-8")
            index += 1
            continue
        kind = body[index + 1]
        if kind in _ESCAPES:
            out += _ESCAPES[kind].encode("utf-8")
            index += 2
        elif kind == "x":
            out.append(int(body[index + 2 : index + 4], 16))
            index += 4
        elif kind in "uU":
            width = 4 if kind == "u" else 8
            out += chr(int(body[index + 2 : index + 2 + width], 16)).encode("utf-8")
            index += 2 + width
        else:  # octal \NNN
            out.append(int(body[index + 1 : index + 4], 8))
            index += 4
    return out.decode("utf-8")


def tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of Go source (comments and spaces dropped)."""
    out = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind:
            out.append((kind, match.group(kind)))
    return out


@dataclass
class Expansion:
    """One entry of an eval_test.go table."""

    test: str
    params: dict[str, str] | None
    input: str
    output: str = ""
    want_error: str = ""


@dataclass
class FuncCall:
    """One ``got, want := toX(args...), "want"`` assertion of funcs_test.go."""

    function: str
    args: list[str] = field(default_factory=list)
    want: str = ""


def _value(toks: list[tuple[str, str]], index: int) -> tuple[object, int]:
    kind, text = toks[index]
    if kind in ("string", "raw"):
        return go_string(text), index + 1
    if kind == "ident" and text == "map":
        # map[string]string{ "k": "v", ... }
        while toks[index][1] != "{":
            index += 1
        index += 1
        mapping: dict[str, str] = {}
        while toks[index][1] != "}":
            key, index = _value(toks, index)
            assert toks[index][1] == ":"
            value, index = _value(toks, index + 1)
            mapping[str(key)] = str(value)
            if toks[index][1] == ",":
                index += 1
        return mapping, index + 1
    if kind == "ident":
        return text, index + 1
    raise ValueError(f"unexpected Go token {text!r}")


def expansions() -> list[Expansion]:
    """Every entry of every ``expressions`` table in eval_test.go, with the test function it belongs to."""
    text = (ROOT / "envsubst" / "eval_test.go").read_text()
    out: list[Expansion] = []
    for function in re.finditer(r"func (Test\w+)\(t \*testing\.T\) \{(.*?)\n\}\n", text, re.S):
        name, body = function.groups()
        table = re.search(r"var expressions = \[\]struct \{.*?\}\{(.*)\n\t\}\n", body, re.S)
        if not table:
            continue
        toks = tokens(table.group(1))
        index = 0
        while index < len(toks):
            if toks[index][1] != "{":
                index += 1
                continue
            index += 1
            fields: dict[str, object] = {}
            while toks[index][1] != "}":
                key = toks[index][1]
                assert toks[index + 1][1] == ":", toks[index : index + 3]
                fields[key], index = _value(toks, index + 2)
                if toks[index][1] == ",":
                    index += 1
            index += 1
            params = fields.get("params")
            error = str(fields.get("wantErr") or "")
            out.append(
                Expansion(
                    name,
                    dict(params) if isinstance(params, dict) else None,
                    str(fields["input"]),
                    str(fields.get("output", "")),
                    "" if error == "nil" else error,
                )
            )
    return out


def func_calls() -> list[FuncCall]:
    """Every ``got, want := toX("...", ...), "..."`` assertion of funcs_test.go."""
    text = (ROOT / "envsubst" / "funcs_test.go").read_text()
    out = []
    for match in re.finditer(r"got, want :?= (to\w+)\((.*?)\), (\"(?:[^\"\\]|\\.)*\")\n", text):
        args = [go_string(t) for kind, t in tokens(match.group(2)) if kind in ("string", "raw")]
        out.append(FuncCall(match.group(1), args, go_string(match.group(3))))
    return out
