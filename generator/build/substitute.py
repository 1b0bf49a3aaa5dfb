"""Offline replica of Flux kustomize-controller's ``spec.postBuild`` variable substitution.

Every rule below was read from the upstream sources, not guessed:

* fluxcd/pkg ``kustomize/kustomize_varsub.go`` (``SubstituteVariables``, ``LoadVariables``,
  ``varSubstitution``): ``substituteFrom`` entries are read in order and later ones overwrite earlier
  ones, inline ``substitute`` overwrites them all; every value loses its ``"\\n"`` characters; a missing
  ConfigMap/Secret fails unless ``optional``; a resource whose *label or annotation*
  ``kustomize.toolkit.fluxcd.io/substitute`` is exactly ``disabled`` is left alone; nothing at all is
  substituted when the variable map is empty (``if len(vars) > 0``); every variable name must match
  ``^[_[:alpha:]][_[:alpha:][:digit:]]*$``; the resource is rendered with ``res.AsYAML()``, expanded with
  envsubst, re-read with ``yaml.YAMLToJSON`` and stored with kyaml ``RNode.UnmarshalJSON``.
* fluxcd/pkg ``envsubst`` (Flux's fork of drone/envsubst): ``parse/scan.go``, ``parse/parse.go``,
  ``template.go`` (strict mode and ``isDefaultOp``), ``funcs.go``, ``eval.go``; drone/envsubst
  ``path/match.go`` (Go's ``path.Match`` where ``*`` and ``?`` also match ``/``). Only ``${...}`` is
  expanded: a bare ``$var`` is plain text, ``$$`` is one literal ``$`` (so ``$${x}`` gives ``${x}``),
  ``${var-default}`` is a parse error ("missing closing brace"), and the default forms
  (``=``, ``:=``, ``:-``, ``:?``, ``:+``) all mean "use the default when the value is empty".
* kustomize ``api/resource/resource.go``: ``AsYAML`` is ``yaml.JSONToYAML(r.MarshalJSON())``;
  sigs.k8s.io/yaml ``JSONToYAML``/``YAMLToJSON`` use go-yaml **v2** (YAML 1.1: ``yes``/``on``/``y`` are
  booleans, ``0777`` is octal), so the text that envsubst sees is go-yaml v2's emitter output
  (``encode.go``, ``emitterc.go``: plain when the string would read back as a string, else single or
  double quotes, ``|`` blocks for multi-line text, lines folded past column 80) and the result is
  read back with go-yaml v2's ``resolve.go`` rules. Quotes written in the source manifest are
  therefore gone: ``replicas: "${n}"`` with ``n=3`` becomes the integer ``3``.
* kyaml ``RNode.UnmarshalJSON`` decodes numbers as float64, and the controller's final ``AsYaml``
  prints integral ones as integers: every number of a substituted resource goes through float64.
* Flux docs, "Post build variable substitution" (kustomize-controller ``docs/spec/v1/kustomizations.md``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import decimal
import functools
import math
import re
import struct
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from ruamel.yaml.scanner import ScannerError

from generator.errors import FleetgenError

__all__ = ["SubstitutionError", "collect_variables", "envsubst", "substitute_object"]

VARSUB_REGEX = "^[_[:alpha:]][_[:alpha:][:digit:]]*$"
DISABLE_KEY = "kustomize.toolkit.fluxcd.io/substitute"
DISABLED_VALUE = "disabled"

_VAR_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")  # RE2 [:alpha:]/[:digit:] are ASCII-only


class SubstitutionError(FleetgenError):
    """Post-build substitution failed where kustomize-controller would fail the Kustomization."""

    def __init__(self, message: str, *, variable: str | None = None, expression: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable
        #: The ``${...}`` text that failed, when known (to find the file it is written in).
        self.expression = expression


class SubstitutionPanic(SubstitutionError):
    """envsubst panics where Go would (fluxcd/pkg envsubst v1.7.0, the version kustomize-controller v1.9.4 of
    Flux 2.9.4 builds with): controller-runtime recovers it (kustomize-controller main.go ``RecoverPanic``) and the
    Kustomization's reconciliation fails with the panic instead of applying anything."""


# --------------------------------------------------------------------------------------------------
# envsubst: a port of fluxcd/pkg/envsubst (scanner and parser work on UTF-8 bytes, like Go)
# --------------------------------------------------------------------------------------------------

_TOK_ILLEGAL, _TOK_EOF, _TOK_IDENT, _TOK_LBRACK, _TOK_RBRACK = range(5)
_SCAN_IDENT, _SCAN_LBRACK, _SCAN_RBRACK, _SCAN_ESCAPE = 1, 2, 4, 8
_ESC_DOLLAR, _ESC_BACKSLASH = 1, 2
_ESC_ALL = _ESC_DOLLAR | _ESC_BACKSLASH
_EOF = "\x00"  # Go's scanner uses rune 0 for end of input, so a NUL character also ends the text
_RUNE_ERROR = "\ufffd"
_SCAN_STOP = re.compile(rb"[$\x00\\]")

_Accept = Callable[[str, int], bool]


def _decode_rune(buf: bytes, pos: int) -> tuple[str, int]:
    """Go ``utf8.DecodeRune``: the rune at ``pos`` and its width; an invalid byte is U+FFFD of width 1."""
    lead = buf[pos]
    if lead < 0x80:
        return chr(lead), 1
    width = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
    if width:
        try:
            return buf[pos : pos + width].decode("utf-8"), width
        except UnicodeDecodeError:
            pass
    return _RUNE_ERROR, 1


def _go_runes(data: bytes) -> list[str]:
    """Go ``[]rune(s)``: the runes of ``data``, each invalid byte becoming U+FFFD."""
    runes: list[str] = []
    pos = 0
    while pos < len(data):
        rune, width = _decode_rune(data, pos)
        runes.append(rune)
        pos += width
    return runes


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _accept_rune(r: str, i: int) -> bool:
    return True


def _accept_ident(r: str, i: int) -> bool:
    category = unicodedata.category(r)
    return category.startswith("L") or category == "Nd" or r == "_"


def _accept_colon(r: str, i: int) -> bool:
    return r == ":"


def _accept_one_hash(r: str, i: int) -> bool:
    return r == "#" and i == 1


def _accept_not_closing(r: str, i: int) -> bool:
    return r != "}"


def _accept_hash_func(r: str, i: int) -> bool:
    return r == "#" and i < 3


def _accept_percent_func(r: str, i: int) -> bool:
    return r == "%" and i < 3


def _accept_default_func(r: str, i: int) -> bool:
    return (i == 1 and r == ":") or (i == 2 and r in "=-?+")


def _accept_replace_func(r: str, i: int) -> bool:
    return (i == 1 and r == "/") or (i == 2 and r in "/#%")


def _accept_one_equal(r: str, i: int) -> bool:
    return i == 1 and r == "="


def _accept_one_colon(r: str, i: int) -> bool:
    return i == 1 and r == ":"


def _reject_colon_close(r: str, i: int) -> bool:
    return r not in ":}"


def _accept_slash(r: str, i: int) -> bool:
    return r == "/"


def _accept_not_slash(r: str, i: int) -> bool:
    return r != "/"


def _accept_casing_func(r: str, i: int) -> bool:
    return r in ",^" and i < 3


class _Scanner:
    """``parse/scan.go``: a byte-position scanner whose behaviour depends on ``mode`` and ``accept``."""

    def __init__(self, text: str) -> None:
        self.buf = _to_bytes(text)
        self.pos = 0
        self.start = 0
        self.width = 0
        self.mode = 0
        self.escape_chars = 0
        self.accept: _Accept = _accept_rune

    def read(self) -> str:
        if self.pos >= len(self.buf):
            self.width = 0
            return _EOF
        rune, self.width = _decode_rune(self.buf, self.pos)
        self.pos += self.width
        return rune

    def unread(self) -> None:
        self.pos -= self.width

    def skip(self) -> None:
        """Drop the escape character just read from the buffer (``$$`` -> ``$``)."""
        self.buf = self.buf[: self.pos - 1] + self.buf[self.pos :]

    def peek(self) -> str:
        rune = self.read()
        self.unread()
        return rune

    def string(self) -> str:
        return _from_bytes(self.buf[self.start : self.pos])

    def scan(self) -> int:
        self.start = self.pos
        rune = self.read()
        if rune == _EOF:
            return _TOK_EOF
        if self._scan_lbrack(rune):
            return _TOK_LBRACK
        if self._scan_rbrack(rune):
            return _TOK_RBRACK
        if self._scan_ident(rune):
            return _TOK_IDENT
        return _TOK_ILLEGAL

    def _scan_ident(self, rune: str) -> bool:
        if not self.mode & _SCAN_IDENT:
            return False
        if self._scan_escaped(rune):
            self.skip()
        elif not self.accept(rune, self.pos - self.start):
            return False
        while True:
            if self.accept is _accept_rune:
                # Only '$', NUL and '\' can end or alter an accept-everything token: jump to the next one.
                found = _SCAN_STOP.search(self.buf, self.pos)
                self.pos = found.start() if found else len(self.buf)
            rune = self.read()
            if rune == _EOF:
                self.unread()
                break
            if self._scan_lbrack(rune):
                self.unread()
                self.unread()
                break
            if self._scan_escaped(rune):
                self.skip()
                continue
            if not self.accept(rune, self.pos - self.start):
                self.unread()
                break
        return True

    def _scan_lbrack(self, rune: str) -> bool:
        if not self.mode & _SCAN_LBRACK:
            return False
        if rune == "$":
            if self.read() == "{":
                return True
            self.unread()
        return False

    def _scan_rbrack(self, rune: str) -> bool:
        return bool(self.mode & _SCAN_RBRACK) and rune == "}"

    def _scan_escaped(self, rune: str) -> bool:
        if not self.mode & _SCAN_ESCAPE:
            return False
        if rune == "$" and self.escape_chars & _ESC_DOLLAR and self.peek() == "$":
            return True
        if rune == "\\" and self.escape_chars & _ESC_BACKSLASH:
            return self.peek() in ("/", "\\")
        return False


@dataclass
class _Text:
    value: str


@dataclass
class _Func:
    param: str = ""
    name: str = ""
    args: list[_Text | _Func] = field(default_factory=list)


_Node = _Text | _Func


class _Parser:
    """``parse/parse.go`` (the top-level loop is iterative instead of recursive)."""

    def __init__(self, text: str) -> None:
        self.s = _Scanner(text)

    def parse(self) -> list[_Node]:
        nodes: list[_Node] = []
        s = self.s
        while True:
            s.accept = _accept_rune
            s.mode = _SCAN_IDENT | _SCAN_LBRACK | _SCAN_ESCAPE
            s.escape_chars = _ESC_DOLLAR
            token = s.scan()
            if token == _TOK_IDENT:
                nodes.append(_Text(s.string()))
            elif token == _TOK_EOF:
                return nodes
            elif token == _TOK_LBRACK:
                nodes.append(self._func())
            else:
                raise SubstitutionError("bad substitution")

    def _func(self) -> _Func:
        s = self.s
        s.escape_chars = _ESC_ALL
        if s.peek() == "#":
            return self._len_func()
        s.accept = _accept_ident
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError("unable to parse variable name")
        name = s.string()
        following = s.peek()
        if following == ":":
            return self._default_or_substr(name)
        if following == "=":
            return self._default_func(name)
        if following in (",", "^"):
            return self._casing_func(name)
        if following == "/":
            return self._replace_func(name)
        if following == "#":
            return self._remove_func(name, _accept_hash_func)
        if following == "%":
            return self._remove_func(name, _accept_percent_func)
        s.accept = _accept_ident
        s.mode = _SCAN_RBRACK
        if s.scan() == _TOK_RBRACK:
            return _Func(param=name)
        raise SubstitutionError("missing closing brace")

    def _param(self, accept: _Accept, mode: int) -> _Node:
        s = self.s
        s.accept = accept
        s.mode = mode | _SCAN_LBRACK
        token = s.scan()
        if token == _TOK_LBRACK:
            return self._func()
        if token in (_TOK_IDENT, _TOK_RBRACK):
            return _Text(s.string())
        raise SubstitutionError("unable to parse substitution within function")

    def _default_or_substr(self, name: str) -> _Func:
        s = self.s
        s.read()
        following = s.peek()
        s.unread()  # uses the width of the peeked rune, exactly like the Go code
        if following in ("=", "-", "?", "+"):
            return self._default_func(name)
        return self._substr_func(name)

    def _substr_func(self, name: str) -> _Func:
        s = self.s
        node = _Func(param=name)
        s.accept = _accept_one_colon
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError("bad substitution")
        node.name = s.string()
        node.args.append(self._param(_reject_colon_close, _SCAN_IDENT))
        s.accept = _accept_colon
        s.mode = _SCAN_IDENT | _SCAN_RBRACK
        token = s.scan()
        if token == _TOK_RBRACK:
            return node
        if token != _TOK_IDENT:
            raise SubstitutionError("bad substitution")
        node.args.append(self._param(_accept_not_closing, _SCAN_IDENT))
        self._consume_rbrack()
        return node

    def _remove_func(self, name: str, accept: _Accept) -> _Func:
        s = self.s
        node = _Func(param=name)
        s.accept = accept
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError("bad substitution")
        node.name = s.string()
        node.args.append(self._param(_accept_not_closing, _SCAN_IDENT))
        self._consume_rbrack()
        return node

    def _replace_func(self, name: str) -> _Func:
        s = self.s
        node = _Func(param=name)
        s.accept = _accept_replace_func
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError("bad substitution")
        node.name = s.string()
        if s.peek() == "/":
            node.args.append(_Text(""))
        else:
            node.args.append(self._param(_accept_not_slash, _SCAN_IDENT | _SCAN_ESCAPE))
        s.accept = _accept_slash
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError("bad substitution")
        if s.peek() == "}":
            self._consume_rbrack()
            return node
        node.args.append(self._param(_accept_not_closing, _SCAN_IDENT | _SCAN_ESCAPE))
        self._consume_rbrack()
        return node

    def _default_func(self, name: str) -> _Func:
        s = self.s
        node = _Func(param=name)
        s.accept = _accept_one_equal if s.peek() == "=" else _accept_default_func
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError("unable to parse default function")
        node.name = s.string()
        while True:
            if s.peek() == "}":
                self._consume_rbrack()
                return node
            node.args.append(self._param(_accept_not_closing, _SCAN_IDENT))

    def _casing_func(self, name: str) -> _Func:
        s = self.s
        node = _Func(param=name)
        s.accept = _accept_casing_func
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError("bad substitution")
        node.name = s.string()
        self._consume_rbrack()
        return node

    def _len_func(self) -> _Func:
        s = self.s
        node = _Func()
        s.accept = _accept_one_hash
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError("bad substitution")
        node.name = s.string()
        s.accept = _accept_ident
        s.mode = _SCAN_IDENT
        if s.scan() != _TOK_IDENT:
            raise SubstitutionError("bad substitution")
        node.param = s.string()
        self._consume_rbrack()
        return node

    def _consume_rbrack(self) -> None:
        self.s.mode = _SCAN_RBRACK
        if self.s.scan() != _TOK_RBRACK:
            raise SubstitutionError("bad substitution")


# --- funcs.go -------------------------------------------------------------------------------------


def _go_lower(rune: str) -> str:
    """Go ``unicode.ToLower`` (simple case mapping) for one rune."""
    lowered = rune.lower()
    if len(lowered) == 1:
        return lowered
    return "i" if rune == "\u0130" else rune


def _go_upper(rune: str) -> str:
    """Go ``unicode.ToUpper`` (simple case mapping) for one rune."""
    upper = rune.upper()
    if len(upper) == 1:
        return upper
    title = rune.title()  # e.g. U+1F80: the full mapping is two runes, the simple one is the titlecase
    return title if len(title) == 1 else rune


def _first_rune_mapped(value: str, mapping: Callable[[str], str]) -> str:
    if not value:
        return value
    data = _to_bytes(value)
    rune, width = _decode_rune(data, 0)
    return mapping(rune) + _from_bytes(data[width:])


def _go_atoi(text: str) -> int | None:
    """Go ``strconv.Atoi``: optional sign and decimal digits, 64-bit range, else None."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def _to_len(value: str, args: list[str]) -> str:
    return str(len(_to_bytes(value)))  # Go len(): bytes, not characters


def _to_lower(value: str, args: list[str]) -> str:
    return "".join(_go_lower(c) for c in value)


def _to_upper(value: str, args: list[str]) -> str:
    return "".join(_go_upper(c) for c in value)


def _to_lower_first(value: str, args: list[str]) -> str:
    return _first_rune_mapped(value, _go_lower)


def _to_upper_first(value: str, args: list[str]) -> str:
    return _first_rune_mapped(value, _go_upper)


def _to_default(value: str, args: list[str]) -> str:
    return "".join(args) if not value and args else value


def _to_substr(value: str, args: list[str]) -> str:
    if not args:
        return value
    data = _to_bytes(value)  # Go slices strings by byte offsets
    size = len(data)
    pos = _go_atoi(args[0])
    if pos is None:
        return value
    if pos < 0:
        pos = max(size + pos, 0)
    if len(args) == 1:
        return _from_bytes(data[pos:]) if pos < size else ""
    length = _go_atoi(args[1])
    if length is None:
        return value
    if pos + length < size and length < 0:
        # funcs.go toSubstr returns s[pos:pos+length]: a negative length panics (there is no bash-style
        # "length from the end" in Flux's envsubst v1.7.0)
        bounds = f"[:{pos + length}]" if pos + length < 0 else f"[{pos}:{pos + length}]"
        raise SubstitutionPanic(f"runtime error: slice bounds out of range {bounds}")
    if pos + length >= size:
        return _from_bytes(data[pos:]) if pos < size else ""
    return _from_bytes(data[pos : pos + length])


def _replace_all(value: str, args: list[str]) -> str:
    if not args:
        return value
    return value.replace(args[0], args[1] if len(args) > 1 else "")


def _replace_first(value: str, args: list[str]) -> str:
    if not args:
        return value
    return value.replace(args[0], args[1] if len(args) > 1 else "", 1)


def _replace_prefix(value: str, args: list[str]) -> str:
    if len(args) != 2 or not value.startswith(args[0]):
        return value
    return value.replace(args[0], args[1], 1)


def _replace_suffix(value: str, args: list[str]) -> str:
    if len(args) != 2 or not value.endswith(args[0]):
        return value
    return value[: len(value) - len(args[0])] + args[1]


class _BadPattern(Exception):
    """drone/envsubst ``path.ErrBadPattern``."""


def _get_esc(chunk: bytes) -> tuple[str, bytes]:
    if not chunk or chunk[0] in b"-]":
        raise _BadPattern
    if chunk[0] == ord("\\"):
        chunk = chunk[1:]
        if not chunk:
            raise _BadPattern
    rune, width = _decode_rune(chunk, 0)
    if rune == _RUNE_ERROR and width == 1:
        raise _BadPattern
    rest = chunk[width:]
    if not rest:
        raise _BadPattern
    return rune, rest


def _match_chunk(chunk: bytes, s: bytes) -> bytes | None:
    """``matchChunk``: the rest of ``s`` after ``chunk`` matched its beginning, else None."""
    while chunk:
        if not s:
            return None
        head = chunk[0]
        if head == ord("["):
            rune, width = _decode_rune(s, 0)
            s = s[width:]
            chunk = chunk[1:]
            negated = bool(chunk) and chunk[0] == ord("^")
            if negated:
                chunk = chunk[1:]
            matched = False
            ranges = 0
            while True:
                if chunk and chunk[0] == ord("]") and ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == ord("-"):
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= rune <= hi:
                    matched = True
                ranges += 1
            if matched == negated:
                return None
        elif head == ord("?"):
            _, width = _decode_rune(s, 0)
            s = s[width:]
            chunk = chunk[1:]
        else:
            if head == ord("\\"):
                chunk = chunk[1:]
                if not chunk:
                    raise _BadPattern
            if chunk[0] != s[0]:
                return None
            s = s[1:]
            chunk = chunk[1:]
    return s


def _scan_chunk(pattern: bytes) -> tuple[bool, bytes, bytes]:
    star = False
    while pattern[:1] == b"*":
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == ord("\\"):
            if i + 1 < len(pattern):
                i += 1
        elif c == ord("["):
            in_range = True
        elif c == ord("]"):
            in_range = False
        elif c == ord("*") and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _path_match(pattern: bytes, name: bytes) -> bool:
    """drone/envsubst ``path.Match``: shell patterns where ``*`` and ``?`` also match ``/``."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return True
        rest = _match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star:
            for i in range(len(name)):
                rest = _match_chunk(chunk, name[i + 1 :])
                if rest is not None:
                    if not pattern and rest:
                        continue
                    name = rest
                    break
            else:
                return False
            continue
        return False
    return not name


def _trim_shortest(value: bytes, pattern: bytes) -> bytes:
    shortest = b""
    for i in range(len(value)):
        try:
            if _path_match(pattern, value[: len(value) - i]):
                shortest = value[: len(value) - i]
        except _BadPattern:
            return value
    return value[len(shortest) :] if shortest else value


def _trim_longest(value: bytes, pattern: bytes) -> bytes:
    for i in range(len(value)):
        try:
            if _path_match(pattern, value[: len(value) - i]):
                return value[len(value) - i :]
        except _BadPattern:
            return value
    return value


def _reverse(data: bytes) -> bytes:
    return "".join(reversed(_go_runes(data))).encode("utf-8")


def _trim_shortest_prefix(value: str, args: list[str]) -> str:
    return _from_bytes(_trim_shortest(_to_bytes(value), _to_bytes(args[0]))) if args else value


def _trim_longest_prefix(value: str, args: list[str]) -> str:
    return _from_bytes(_trim_longest(_to_bytes(value), _to_bytes(args[0]))) if args else value


def _trim_shortest_suffix(value: str, args: list[str]) -> str:
    if not args:
        return value
    trimmed = _trim_shortest(_reverse(_to_bytes(value)), _reverse(_to_bytes(args[0])))
    return _from_bytes(_reverse(trimmed))


def _trim_longest_suffix(value: str, args: list[str]) -> str:
    if not args:
        return value
    trimmed = _trim_longest(_reverse(_to_bytes(value)), _reverse(_to_bytes(args[0])))
    return _from_bytes(_reverse(trimmed))


_Function = Callable[[str, list[str]], str]

_FUNCTIONS: dict[str, _Function] = {
    ",": _to_lower_first,
    ",,": _to_lower,
    "^": _to_upper_first,
    "^^": _to_upper,
    "##": _trim_longest_prefix,
    "%": _trim_shortest_suffix,
    "%%": _trim_longest_suffix,
    ":": _to_substr,
    "/#": _replace_prefix,
    "/%": _replace_suffix,
    "/": _replace_first,
    "//": _replace_all,
}

# template.go isDefaultOp: operators that tolerate an unset variable in strict mode.
_DEFAULT_OPS = frozenset({"-", "+", "=", "?", ":-", ":+", ":=", ":?"})


def _lookup_func(name: str, nargs: int) -> _Function:
    if name == "#":
        return _to_len if nargs == 0 else _trim_shortest_prefix
    return _FUNCTIONS.get(name, _to_default)  # "", "=", ":=", ":-", ":?", ":+", ... -> toDefault


def _evaluate(node: _Node, variables: Mapping[str, str], strict: bool) -> str:
    if isinstance(node, _Text):
        return node.value
    args = [_evaluate(arg, variables, strict) for arg in node.args]  # arguments first, as in Go
    value = variables.get(node.param, "")
    if strict and node.param not in variables and node.name not in _DEFAULT_OPS:
        raise SubstitutionError(f'variable not set (strict mode): "{node.param}"', variable=node.param)
    try:
        return _lookup_func(node.name, len(args))(value, args)
    except SubstitutionPanic as err:
        expression = "${" + node.param + node.name + ":".join(args) + "}"
        raise SubstitutionPanic(
            f"panic: {err} in {expression} (variable '{node.param}' = {value!r}): kustomize-controller's envsubst "
            "(fluxcd/pkg envsubst v1.7.0 funcs.go toSubstr) panics and the Kustomization fails",
            variable=node.param,
            expression=expression,
        ) from err


def envsubst(text: str, variables: Mapping[str, str], *, strict: bool = False) -> str:
    """Expand ``${...}`` in ``text`` exactly like Flux's envsubst; bare ``$var`` stays as it is.

    Undefined variables expand to ``""``; with ``strict`` (the ``StrictPostBuildSubstitutions`` feature
    gate) an undefined variable used without a default operator raises ``SubstitutionError``.
    """
    if "$" not in text and "\x00" not in text:
        return text
    nodes = _Parser(text).parse()
    return "".join(_evaluate(node, variables, strict) for node in nodes)


# --------------------------------------------------------------------------------------------------
# go-yaml v2 scalar resolution (resolve.go) and Go number formatting
# --------------------------------------------------------------------------------------------------

_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP = "str", "int", "float", "bool", "null", "timestamp"

_RESOLVE_MAP: dict[str, tuple[str, Any]] = {}
for _words, _resolved in (
    (("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), (_BOOL, True)),
    (("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), (_BOOL, False)),
    (("", "~", "null", "Null", "NULL"), (_NULL, None)),
    ((".nan", ".NaN", ".NAN"), (_FLOAT, math.nan)),
    ((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), (_FLOAT, math.inf)),
    (("-.inf", "-.Inf", "-.INF"), (_FLOAT, -math.inf)),
):
    for _word in _words:
        _RESOLVE_MAP[_word] = _resolved

_HINT_MAP_CHARS = frozenset("yYnNtTfFoO~")
_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_DOT_FLOAT = re.compile(r"\.[0-9](_?[0-9])*([eE][-+]?[0-9](_?[0-9])*)?")
_GO_UINT = re.compile(r"0[bB]([01]+)|0[oO]([0-7]+)|0[xX]([0-9a-fA-F]+)|0([0-7]*)|([1-9][0-9]*)")
_TIMESTAMP_SHAPE = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:([Tt ])([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


def _go_parse_uint(text: str) -> int | None:
    """Go ``strconv.ParseUint(text, 0, 64)`` (no sign, base prefixes, leading-zero octal)."""
    found = _GO_UINT.fullmatch(text)
    if not found:
        return None
    for group, base in zip(found.groups(), (2, 8, 16, 8, 10), strict=True):
        if group is not None:
            value = int(group, base) if group else 0
            return value if value < 2**64 else None
    return None  # pragma: no cover - the regex always sets one group


def _go_parse_int(text: str) -> int | None:
    """Go ``strconv.ParseInt(text, 0, 64)``."""
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    magnitude = _go_parse_uint(text) if text else None
    if magnitude is None:
        return None
    value = sign * magnitude
    return value if -(2**63) <= value < 2**63 else None


def _go_parse_float(text: str) -> float | None:
    """Go ``strconv.ParseFloat`` for an already-validated decimal literal; out of range is an error."""
    value = float(text.replace("_", ""))
    return None if math.isinf(value) else value


def _is_timestamp(value: str) -> bool:
    """go-yaml v2 ``parseTimestamp``: Go ``time.Parse`` with its four accepted layouts."""
    found = _TIMESTAMP_SHAPE.fullmatch(value)
    if not found:
        return False
    year, month, day, separator, hour, minute, second, zone = found.group(1, 2, 3, 4, 5, 6, 7, 9)
    if separator and (separator == " ") == bool(zone):  # "T"/"t" need a zone, " " forbids one
        return False
    if not 1 <= int(month) <= 12:
        return False
    try:
        datetime.date(int(year), int(month), int(day))
    except ValueError:
        return False
    if separator and (int(hour) >= 24 or int(minute) >= 60 or int(second) >= 60):
        return False
    return not zone or zone == "Z" or (int(zone[1:3]) <= 24 and int(zone[4:6]) <= 60)


def _v2_resolve(value: str, *, timestamps: bool = True) -> tuple[str, Any]:
    """go-yaml v2 ``resolve`` for a plain scalar: ``(kind, python value)``.

    A timestamp keeps its text: decoded into ``interface{}`` go-yaml v2 returns the original string.
    """
    hint = value[0] if value else "N"
    if not (hint in _HINT_MAP_CHARS or hint in "+-.N" or (hint.isascii() and hint.isdigit())):
        return _STR, value
    if value in _RESOLVE_MAP:
        return _RESOLVE_MAP[value]
    if hint == ".":
        if _GO_DOT_FLOAT.fullmatch(value):
            number = _go_parse_float(value)
            if number is not None:
                return _FLOAT, number
    elif hint not in _HINT_MAP_CHARS:
        if timestamps and _is_timestamp(value):
            return _TIMESTAMP, value
        plain = value.replace("_", "")
        integer = _go_parse_int(plain)
        if integer is None:
            integer = _go_parse_uint(plain)
        if integer is not None:
            return _INT, integer
        if _YAML_STYLE_FLOAT.fullmatch(plain):
            number = _go_parse_float(plain)
            if number is not None:
                return _FLOAT, number
    return _STR, value


def _is_base60_float(value: str) -> bool:
    return (
        bool(value)
        and (value[0] in "+-" or "0" <= value[0] <= "9")
        and ":" in value
        and bool(_BASE60_FLOAT.fullmatch(value))
    )


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _shortest_digits(value: float, bits: int) -> tuple[str, int]:
    """Shortest decimal digits that read back as positive ``value`` (float64 or float32), and the
    decimal exponent of the first digit."""
    text = repr(value)
    if bits == 32:
        for precision in range(1, 10):
            text = f"{value:.{precision - 1}e}"
            if _float32(float(text)) == value:
                break
    parts = decimal.Decimal(text).normalize().as_tuple()
    digits = "".join(str(digit) for digit in parts.digits)
    exponent = parts.exponent
    assert isinstance(exponent, int)
    return digits, exponent + len(digits) - 1


def _go_format_g(value: float, bits: int = 64) -> str:
    """Go ``strconv.FormatFloat(value, 'g', -1, bits)`` with go-yaml's ``.inf``/``.nan`` spellings."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if bits == 32:
        try:
            value = _float32(value)
        except OverflowError:
            value = math.copysign(math.inf, value)
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, exponent = _shortest_digits(abs(value), bits)
    if exponent < -4 or exponent >= 6:  # shortest formatting uses precision 6 for this decision
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole = digits[: exponent + 1].ljust(exponent + 1, "0")
    frac = digits[exponent + 1 :]
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


# --------------------------------------------------------------------------------------------------
# go-yaml v2 emitter (encode.go + emitterc.go) for JSON-shaped data: what res.AsYAML() prints
# --------------------------------------------------------------------------------------------------

_BEST_WIDTH = 80
_BEST_INDENT = 2
_BREAKS = "\r\n\x85\u2028\u2029"
_PLAIN, _SINGLE, _DOUBLE, _LITERAL = "plain", "single", "double", "literal"
_NOT_PRINTABLE = re.compile("[^\n\x20-\x7e\xa0-\ud7ff\ue000-\ufffd]|[\ufeff\ufffe\uffff]")
_LINE_BREAK = re.compile("[\r\n\x85\u2028\u2029]")
_BREAK_SPACE = re.compile("[\r\n\x85\u2028\u2029] ")
_SPACE_BREAK = re.compile(" [\r\n\x85\u2028\u2029]")
_INNER_BLOCK_INDICATOR = re.compile(":(?=[ \t]|\\Z)|(?<=[ \t\r\n\x85\u2028\u2029\x00])#")
_DQ_ESCAPES = {
    "\x00": "0",
    "\x07": "a",
    "\x08": "b",
    "\t": "t",
    "\n": "n",
    "\x0b": "v",
    "\x0c": "f",
    "\r": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\xa0": "_",
    "\u2028": "L",
    "\u2029": "P",
}
_LINE_OR_TEXT = re.compile("[\r\n\x85\u2028\u2029]|[^\r\n\x85\u2028\u2029]+")


@dataclass(frozen=True)
class _Analysis:
    multiline: bool
    block_plain_allowed: bool
    single_quoted_allowed: bool
    block_allowed: bool


def _analyze(value: str) -> _Analysis:
    """``yaml_emitter_analyze_scalar`` (block context only: flow styles never hold scalars here)."""
    if not value:
        return _Analysis(False, True, True, False)
    first = value[0]
    followed_by_blank = len(value) == 1 or value[1] in " \t"
    block_indicators = (
        value.startswith(("---", "..."))
        or first in "#,[]{}&*!|>'\"%@`"
        or (first in "?:-" and followed_by_blank)
        or _INNER_BLOCK_INDICATOR.search(value, 1) is not None
    )
    line_breaks = _LINE_BREAK.search(value) is not None
    special = _NOT_PRINTABLE.search(value) is not None
    edge_space = value[0] == " " or value[-1] == " "
    edge_break = value[0] in _BREAKS or value[-1] in _BREAKS
    break_space = _BREAK_SPACE.search(value) is not None
    space_break = _SPACE_BREAK.search(value) is not None
    block_plain = not (edge_space or edge_break or break_space or space_break or special or line_breaks)
    block_plain = block_plain and not block_indicators
    single = not (break_space or space_break or special)
    block = not (value[-1] == " " or space_break or special)
    return _Analysis(line_breaks, block_plain, single, block)


def _v2_string_style(value: str) -> str:
    """go-yaml v2 ``encoder.stringv``: the style it asks the emitter for."""
    if "\n" in value:
        return _LITERAL
    kind, _ = _v2_resolve(value)
    return _PLAIN if kind == _STR and not _is_base60_float(value) else _DOUBLE


def _v2_key_less(a: str, b: str) -> bool:
    """go-yaml v2 ``keyList.Less`` for two string keys (a "natural" order: digit runs compare as numbers)."""
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            continue
        letter_a, letter_b = ca.isalpha(), cb.isalpha()
        if letter_a and letter_b:
            return ca < cb
        if letter_a or letter_b:
            return letter_b
        num_a = num_b = 0
        if ca == "0" or cb == "0":
            for j in range(i - 1, -1, -1):
                if not _go_is_digit(a[j]):
                    break
                if a[j] != "0":
                    num_a = num_b = 1
                    break
        end_a = i
        while end_a < len(a) and _go_is_digit(a[end_a]):
            num_a = _wrap64(num_a * 10 + ord(a[end_a]) - 48)
            end_a += 1
        end_b = i
        while end_b < len(b) and _go_is_digit(b[end_b]):
            num_b = _wrap64(num_b * 10 + ord(b[end_b]) - 48)
            end_b += 1
        if num_a != num_b:
            return num_a < num_b
        if end_a != end_b:
            return end_a < end_b
        return ca < cb
    return len(a) < len(b)


def _go_is_digit(rune: str) -> bool:
    return unicodedata.category(rune) == "Nd"


def _wrap64(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


def _v2_key_cmp(a: str, b: str) -> int:
    return -1 if _v2_key_less(a, b) else 1 if _v2_key_less(b, a) else 0


class _Emitter:
    """The subset of go-yaml v2's emitter that ``yaml.Marshal`` of a JSON object exercises."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.column = 0
        self.indent = -1
        self.whitespace = True
        self.indention = True

    def text(self) -> str:
        if self.column:
            self.out.append("\n")
        return "".join(self.out)

    # low-level writers -----------------------------------------------------------------------
    def _emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.column += len(chunk)

    def _put_break(self) -> None:
        self.out.append("\n")
        self.column = 0

    def _write_break(self, char: str) -> None:
        self.out.append("\n" if char == "\n" else char)
        self.column = 0

    def _write_indent(self) -> None:
        indent = max(self.indent, 0)
        if not self.indention or self.column > indent or (self.column == indent and not self.whitespace):
            self._put_break()
        if self.column < indent:
            self._emit(" " * (indent - self.column))
        self.whitespace = True
        self.indention = True

    def _write_indicator(self, indicator: str, need_whitespace: bool, is_whitespace: bool, is_indention: bool) -> None:
        if need_whitespace and not self.whitespace:
            self._emit(" ")
        self._emit(indicator)
        self.whitespace = is_whitespace
        self.indention = self.indention and is_indention

    def _increase_indent(self, flow: bool, indentless: bool) -> None:
        if self.indent < 0:
            self.indent = _BEST_INDENT if flow else 0
        elif not indentless:
            self.indent += _BEST_INDENT

    # nodes -------------------------------------------------------------------------------------
    def node(self, value: Any, *, mapping_context: bool) -> None:
        if isinstance(value, dict):
            if value:
                self._block_mapping(value)
            else:
                self._write_indicator("{", True, True, False)
                self._write_indicator("}", False, False, False)
        elif isinstance(value, list):
            if value:
                self._block_sequence(value, mapping_context)
            else:
                self._write_indicator("[", True, True, False)
                self._write_indicator("]", False, False, False)
        elif isinstance(value, str):
            self._scalar(value, _v2_string_style(value), simple_key=False)
        elif value is None:
            self._scalar("null", _PLAIN, simple_key=False)
        elif isinstance(value, bool):
            self._scalar("true" if value else "false", _PLAIN, simple_key=False)
        elif isinstance(value, int):
            self._scalar(str(value), _PLAIN, simple_key=False)
        else:
            self._scalar(_go_format_g(value), _PLAIN, simple_key=False)

    def _block_mapping(self, mapping: dict[str, Any]) -> None:
        saved = self.indent
        self._increase_indent(flow=False, indentless=False)
        for key in sorted(mapping, key=functools.cmp_to_key(_v2_key_cmp)):
            self._write_indent()
            if not _LINE_BREAK.search(key) and len(key.encode("utf-8")) <= 128:
                self._scalar(key, _v2_string_style(key), simple_key=True)
                self._write_indicator(":", False, False, False)
            else:
                self._write_indicator("?", True, False, True)
                self._scalar(key, _v2_string_style(key), simple_key=False)
                self._write_indent()
                self._write_indicator(":", True, False, True)
            self.node(mapping[key], mapping_context=True)
        self.indent = saved

    def _block_sequence(self, items: list[Any], mapping_context: bool) -> None:
        saved = self.indent
        self._increase_indent(flow=False, indentless=mapping_context and not self.indention)
        for item in items:
            self._write_indent()
            self._write_indicator("-", True, False, True)
            self.node(item, mapping_context=False)
        self.indent = saved

    def _scalar(self, value: str, style: str, *, simple_key: bool) -> None:
        analysis = _analyze(value)
        if simple_key and analysis.multiline:
            style = _DOUBLE
        if style == _PLAIN and (not analysis.block_plain_allowed or (not value and simple_key)):
            style = _SINGLE
        if style == _SINGLE and not analysis.single_quoted_allowed:
            style = _DOUBLE
        if style == _LITERAL and (not analysis.block_allowed or simple_key):
            style = _DOUBLE
        saved = self.indent
        self._increase_indent(flow=True, indentless=False)
        if style == _PLAIN:
            self._write_plain(value, allow_breaks=not simple_key)
        elif style == _SINGLE:
            self._write_single(value, allow_breaks=not simple_key)
        elif style == _DOUBLE:
            self._write_double(value, allow_breaks=not simple_key)
        else:
            self._write_literal(value)
        self.indent = saved

    def _write_plain(self, value: str, allow_breaks: bool) -> None:
        if not self.whitespace:
            self._emit(" ")
        spaces = False
        i, size = 0, len(value)
        while i < size:
            if value[i] == " ":
                if allow_breaks and not spaces and self.column > _BEST_WIDTH and value[i + 1 : i + 2] != " ":
                    self._write_indent()
                else:
                    self._emit(" ")
                spaces = True
                i += 1
            else:
                end = value.find(" ", i)
                end = size if end < 0 else end
                self._emit(value[i:end])
                self.indention = False
                spaces = False
                i = end
        self.whitespace = False
        self.indention = False

    def _write_single(self, value: str, allow_breaks: bool) -> None:
        self._write_indicator("'", True, False, False)
        spaces = breaks = False
        i, size = 0, len(value)
        while i < size:
            char = value[i]
            if char == " ":
                if (
                    allow_breaks
                    and not spaces
                    and self.column > _BEST_WIDTH
                    and 0 < i < size - 1
                    and value[i + 1] != " "
                ):
                    self._write_indent()
                else:
                    self._emit(" ")
                spaces = True
            elif char in _BREAKS:
                if not breaks and char == "\n":
                    self._put_break()
                self._write_break(char)
                self.indention = True
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                self._emit("''" if char == "'" else char)
                self.indention = False
                spaces = breaks = False
            i += 1
        self._write_indicator("'", False, False, False)
        self.whitespace = False
        self.indention = False

    def _write_double(self, value: str, allow_breaks: bool) -> None:
        self._write_indicator('"', True, False, False)
        spaces = False
        i, size = 0, len(value)
        while i < size:
            char = value[i]
            if _NOT_PRINTABLE.match(char) or char in _BREAKS or char in '"\\':
                code = ord(char)
                if char in _DQ_ESCAPES:
                    self._emit("\\" + _DQ_ESCAPES[char])
                elif code <= 0xFF:
                    self._emit(f"\\x{code:02X}")
                elif code <= 0xFFFF:
                    self._emit(f"\\u{code:04X}")
                else:
                    self._emit(f"\\U{code:08X}")
                spaces = False
            elif char == " ":
                if allow_breaks and not spaces and self.column > _BEST_WIDTH and i not in (0, size - 1):
                    self._write_indent()
                    if value[i + 1] == " ":
                        self._emit("\\")
                else:
                    self._emit(" ")
                spaces = True
            else:
                self._emit(char)
                spaces = False
            i += 1
        self._write_indicator('"', False, False, False)
        self.whitespace = False
        self.indention = False

    def _write_literal(self, value: str) -> None:
        self._write_indicator("|", True, False, False)
        if value and (value[0] == " " or value[0] in _BREAKS):
            self._write_indicator(str(_BEST_INDENT), False, False, False)
        chomp = ""
        if not value or value[-1] not in _BREAKS:
            chomp = "-"
        elif len(value) == 1 or value[-2] in _BREAKS:
            chomp = "+"
        if chomp:
            self._write_indicator(chomp, False, False, False)
        self._put_break()
        self.indention = True
        self.whitespace = True
        breaks = True
        for piece in _LINE_OR_TEXT.findall(value):
            if len(piece) == 1 and piece in _BREAKS:
                self._write_break(piece)
                self.indention = True
                breaks = True
            else:
                if breaks:
                    self._write_indent()
                self._emit(piece)
                self.indention = False
                breaks = False


def _json_compatible(value: Any, where: str = "") -> Any:
    """kyaml ``MarshalJSON``: reject what ``json.Marshal`` rejects, turn dates into their text."""
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SubstitutionError(f"json: unsupported type: non-string mapping key {key!r}{where}")
            result[key] = _json_compatible(item, f"{where}.{key}")
        return result
    if isinstance(value, list | tuple):
        return [_json_compatible(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise SubstitutionError(f"json: unsupported value: {_go_float_word(value)}")
    if isinstance(value, datetime.date):  # go-yaml keeps timestamps as their source text
        return value.isoformat()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise SubstitutionError(f"json: unsupported type: {type(value).__name__}{where}")


def _go_float_word(value: float) -> str:
    return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"


def _dump_v2(obj: dict[str, Any]) -> str:
    """``res.AsYAML()``: the YAML text Flux hands to envsubst."""
    emitter = _Emitter()
    emitter.node(obj, mapping_context=False)
    return emitter.text()


# --------------------------------------------------------------------------------------------------
# YAMLToJSON: go-yaml v2 decoding of the substituted text, then the JSON conversions
# --------------------------------------------------------------------------------------------------

_TAG_PREFIX = "tag:yaml.org,2002:"
_RESOLVABLE_TAGS = {f"{_TAG_PREFIX}{name}" for name in ("str", "bool", "int", "float", "null", "timestamp")}


class _YamlError(Exception):
    """A failure of ``yaml.YAMLToJSON``, worded like go-yaml / encoding/json."""


class _GoMap(list[tuple[Any, Any]]):
    """A decoded ``map[interface{}]interface{}``: (key, value) pairs with Go key identity."""


def _key_identity(key: Any) -> tuple[str, Any]:
    return (type(key).__name__, key)


class _V2Decoder:
    """Builds go-yaml v2 values from parser events (aliases, merge keys, explicit tags included)."""

    def __init__(self, events: Iterator[Event]) -> None:
        self._events = events
        self._anchors: dict[str, Any] = {}

    def document(self) -> Any:
        next(self._events)  # StreamStartEvent
        event = next(self._events)
        if isinstance(event, StreamEndEvent):
            return None
        return self._node(next(self._events))  # first document only, like yaml.Unmarshal

    def _node(self, event: Event) -> Any:
        if isinstance(event, AliasEvent):
            anchor = str(event.anchor)
            if anchor not in self._anchors:
                raise _YamlError(f"yaml: unknown anchor '{anchor}' referenced")
            return copy.deepcopy(self._anchors[anchor])
        value: Any
        if isinstance(event, ScalarEvent):
            value = self._scalar(event)
        elif isinstance(event, SequenceStartEvent):
            value = []
            while not isinstance(item := next(self._events), SequenceEndEvent):
                value.append(self._node(item))
        elif isinstance(event, MappingStartEvent):
            value = self._mapping()
        else:  # pragma: no cover - the parser only yields the kinds above here
            raise _YamlError(f"yaml: unexpected event {type(event).__name__}")
        if event.anchor:
            self._anchors[str(event.anchor)] = value
        return value

    def _mapping(self) -> _GoMap:
        entries: dict[tuple[str, Any], tuple[Any, Any]] = {}
        while not isinstance(event := next(self._events), MappingEndEvent):
            if self._is_merge(event):
                self._merge(next(self._events), entries)
                continue
            key = self._node(event)
            if isinstance(key, list):  # _GoMap is a list too
                raise _YamlError(f"yaml: invalid map key: {key!r}")
            entries[_key_identity(key)] = (key, self._node(next(self._events)))
        return _GoMap(entries.values())

    @staticmethod
    def _is_merge(event: Event) -> bool:
        return (
            isinstance(event, ScalarEvent)
            and event.value == "<<"
            and (bool(event.implicit and event.implicit[0]) or event.tag == f"{_TAG_PREFIX}merge")
        )

    def _merge(self, event: Event, entries: dict[tuple[str, Any], tuple[Any, Any]]) -> None:
        value = self._node(event)
        if isinstance(value, _GoMap):
            sources = [value]
        elif isinstance(value, list) and all(isinstance(item, _GoMap) for item in value):
            sources = list(reversed(value))  # earlier maps take precedence
        else:
            raise _YamlError("yaml: map merge requires map or sequence of maps as the value")
        for source in sources:
            for key, item in source:
                entries[_key_identity(key)] = (key, item)

    @staticmethod
    def _scalar(event: ScalarEvent) -> Any:
        tag = str(event.tag) if event.tag else ""
        text = str(event.value)
        plain_implicit = bool(event.implicit and event.implicit[0])
        if not tag and not plain_implicit:
            return text  # quoted or block scalar without a tag
        if tag == f"{_TAG_PREFIX}binary":
            try:
                return _from_bytes(base64.b64decode(re.sub("[\r\n]", "", text), validate=True))
            except (binascii.Error, ValueError) as err:
                raise _YamlError("yaml: !!binary value contains invalid base64 data") from err
        if tag and tag not in _RESOLVABLE_TAGS:
            return text  # custom or non-specific tag: go-yaml keeps the string
        if tag == f"{_TAG_PREFIX}str":
            return text
        wanted = tag.removeprefix(_TAG_PREFIX)
        kind, resolved = _v2_resolve(text, timestamps=wanted in ("", _TIMESTAMP))
        if not tag or wanted == kind:
            return resolved
        if wanted == _FLOAT and kind == _INT:
            return float(resolved)
        raise _YamlError(f"yaml: cannot decode !!{kind} `{text}` as a !!{wanted}")


def _json_key(key: Any, value: Any) -> str:
    """sigs.k8s.io/yaml ``convertToJSONableObject`` map-key conversion."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int) and -(2**63) <= key < 2**63:
        return str(key)
    if isinstance(key, float):
        return _go_format_g(key, 32)
    if key is None:
        type_name, shown = "%!s(<nil>)", "<nil>"
    elif isinstance(key, int):
        type_name, shown = "uint64", hex(key)
    else:
        type_name, shown = type(key).__name__, repr(key)
    raise _YamlError(f"unsupported map key of type: {type_name}, key: {shown}, value: {value!r}")


def _to_json_object(value: Any) -> Any:
    """YAMLToJSON + json.Marshal: string keys, and no NaN or infinities."""
    if isinstance(value, _GoMap):
        return {_json_key(key, item): _to_json_object(item) for key, item in value}
    if isinstance(value, list):
        return [_to_json_object(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise _YamlError(f"json: unsupported value: {_go_float_word(value)}")
    return value


def _through_float64(value: Any) -> Any:
    """kyaml ``UnmarshalJSON`` makes every number a float64; the final ``AsYaml`` prints integral ones as ints."""
    if isinstance(value, dict):
        return {key: _through_float64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_through_float64(item) for item in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    number = float(value)
    return int(number) if number.is_integer() and -(2**63) <= number < 2**64 else number


def _reorder_like(result: Any, original: Any) -> Any:
    """Give mappings the input's key order where the keys are unchanged (Flux's own output is sorted)."""
    if isinstance(result, dict) and isinstance(original, dict):
        order = list(original) if set(result) == set(original) else list(result)
        return {key: _reorder_like(result[key], original.get(key)) for key in order}
    if isinstance(result, list) and isinstance(original, list) and len(result) == len(original):
        return [_reorder_like(item, source) for item, source in zip(result, original, strict=True)]
    return result


def _load_v2(text: str) -> Any:
    """``yaml.YAMLToJSON`` of the substituted text, as Python data with JSON-shaped values."""
    if re.search("[\ud800-\udfff]", text):
        raise _YamlError("yaml: invalid leading UTF-8 octet")
    try:
        return _to_json_object(_V2Decoder(iter(YAML(typ="safe").parse(text))).document())
    except YAMLError as err:
        raise _YamlError(f"yaml: {_yaml_error_text(err)}") from err


def _yaml_error_text(err: YAMLError) -> str:
    """go-yaml v2 ``parser.fail``: the problem, after a line number taken the way go-yaml takes it."""
    reason = getattr(err, "reason", None)
    if reason is not None:  # reader errors: "control characters are not allowed" and the like
        return str(reason)
    problem = str(getattr(err, "problem", None) or err)
    problem_mark = getattr(err, "problem_mark", None)
    context_mark = getattr(err, "context_mark", None)
    line = 0
    if problem_mark is not None and problem_mark.line:
        line = problem_mark.line + (1 if isinstance(err, ScannerError) else 0)
    elif context_mark is not None and context_mark.line:
        line = context_mark.line
    return f"line {line}: {problem}" if line else problem


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def _substitution_disabled(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return False
    for field_name in ("labels", "annotations"):
        values = metadata.get(field_name)
        if isinstance(values, Mapping) and values.get(DISABLE_KEY) == DISABLED_VALUE:
            return True
    return False


def substitute_object(
    obj: dict[str, Any],
    variables: Mapping[str, str],
    *,
    strict: bool = False,
    always: bool = False,
) -> dict[str, Any]:
    """Return ``obj`` as kustomize-controller applies it after post-build substitution (a new object).

    Nothing changes when the object is labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute:
    disabled`` or when ``variables`` is empty (set ``always`` to mimic ``substituteStrategy: Always``).
    """
    name = ""
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        name = metadata["name"]
    prefix = f"post build failed for '{name}': "
    try:
        data = _json_compatible(obj)  # res.AsYAML() runs (and can fail) before the disabled check
    except SubstitutionError as err:
        raise SubstitutionError(prefix + str(err)) from err
    if _substitution_disabled(obj) or (not variables and not always):
        return copy.deepcopy(obj)
    if not isinstance(data, dict):
        raise SubstitutionError(prefix + "resource is not a mapping")
    for var_name, value in variables.items():
        if not _VAR_NAME.fullmatch(var_name):
            raise SubstitutionError(
                f"{prefix}envsubst error: '{var_name}' var name is invalid, must match '{VARSUB_REGEX}'"
            )
        if not isinstance(value, str):
            raise SubstitutionError(f"{prefix}variable '{var_name}' must be a string, got {type(value).__name__}")
    text = _dump_v2(data)
    try:
        output = envsubst(text, variables, strict=strict)
    except SubstitutionPanic as err:
        raise SubstitutionPanic(prefix + str(err), variable=err.variable, expression=err.expression) from err
    except SubstitutionError as err:
        raise SubstitutionError(
            f"{prefix}envsubst error: variable substitution failed: {err}", variable=err.variable
        ) from err
    try:
        result = _load_v2(output)
    except _YamlError as err:
        raise SubstitutionError(f"{prefix}envsubst error: YAMLToJSON: error converting YAML to JSON: {err}") from err
    if not isinstance(result, dict):
        kind = "array" if isinstance(result, list) else "string" if isinstance(result, str) else "value"
        raise SubstitutionError(
            f"{prefix}UnmarshalJSON: json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
        )
    reordered: dict[str, Any] = _reorder_like(_through_float64(result), data)
    return reordered


def _string_map(source: Any, what: str) -> dict[str, str]:
    if source is None:
        return {}
    if not isinstance(source, Mapping):
        raise SubstitutionError(f"{what} must be a mapping of strings")
    result: dict[str, str] = {}
    for key, value in source.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SubstitutionError(f"{what}.{key}: expected string, got {type(value).__name__}")
        result[key] = value
    return result


def _source_values(kind: str, name: str, found: Mapping[str, Any]) -> dict[str, str]:
    """The ``.data`` of a ConfigMap, or of a Secret as the API server stores it (``stringData`` merged in)."""
    if kind == "ConfigMap":
        return _string_map(found.get("data"), f"ConfigMap/{name} data")
    values: dict[str, str] = {}
    for key, encoded in _string_map(found.get("data"), f"Secret/{name} data").items():
        try:
            values[key] = _from_bytes(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError) as err:
            raise SubstitutionError(f"Secret/{name} data.{key}: illegal base64 data") from err
    values.update(_string_map(found.get("stringData"), f"Secret/{name} stringData"))
    return values


def collect_variables(
    post_build: Mapping[str, Any] | None,
    find_object: Callable[[str, str], Mapping[str, Any] | None],
) -> dict[str, str]:
    """The variables of a Kustomization's ``spec.postBuild``, merged exactly as Flux merges them.

    ``substituteFrom`` entries are applied in order (later keys win), then inline ``substitute`` wins
    over all of them; newlines are removed from every value. ``find_object(kind, name)`` returns the
    ConfigMap or Secret, or None when it is absent (an error unless the reference is ``optional``).
    """
    if not post_build:
        return {}
    variables: dict[str, str] = {}
    references = post_build.get("substituteFrom") or []
    if not isinstance(references, list):
        raise SubstitutionError("unable to get subsituteFrom: spec.postBuild.substituteFrom must be a list")
    for index, reference in enumerate(references):
        if not isinstance(reference, Mapping):
            raise SubstitutionError(
                f"unable to get subsituteFrom: unable to convert patch {index} to map[string]interface{{}}"
            )
        kind, name = reference.get("kind"), reference.get("name")
        if kind not in ("ConfigMap", "Secret"):
            continue  # Flux's switch has no default branch; the CRD only admits these two kinds
        if not isinstance(name, str):
            raise SubstitutionError(f"unable to get subsituteFrom: entry {index} has no name")
        found = find_object(kind, name)
        if found is None:
            if reference.get("optional") is True:
                continue
            raise SubstitutionError(f"substitute from '{kind}/{name}' error: {kind.lower()}s \"{name}\" not found")
        for key, value in _source_values(kind, name, found).items():
            variables[key] = value.replace("\n", "")
    for key, value in _string_map(post_build.get("substitute"), "spec.postBuild.substitute").items():
        variables[key] = value.replace("\n", "")
    return variables
