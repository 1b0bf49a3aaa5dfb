"""envsubst: a port of fluxcd/pkg/envsubst (Flux's fork of drone/envsubst).

The scanner and parser work on UTF-8 bytes like Go's; the functions (defaults, substrings, case, trims, replace)
and strict mode behave as upstream's ``funcs.go``, ``eval.go`` and ``template.go`` (sources in
``generator.build.substitute``)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from generator.build.model import SubstitutionError, SubstitutionPanic

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


def go_string(data: bytes) -> str:
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
        return go_string(self.buf[self.start : self.pos])

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
    return mapping(rune) + go_string(data[width:])


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
        return go_string(data[pos:]) if pos < size else ""
    length = _go_atoi(args[1])
    if length is None:
        return value
    if pos + length < size and length < 0:
        # funcs.go toSubstr returns s[pos:pos+length]: a negative length panics (there is no bash-style
        # "length from the end" in Flux's envsubst v1.7.0)
        bounds = f"[:{pos + length}]" if pos + length < 0 else f"[{pos}:{pos + length}]"
        raise SubstitutionPanic(f"runtime error: slice bounds out of range {bounds}")
    if pos + length >= size:
        return go_string(data[pos:]) if pos < size else ""
    return go_string(data[pos : pos + length])


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
    return go_string(_trim_shortest(_to_bytes(value), _to_bytes(args[0]))) if args else value


def _trim_longest_prefix(value: str, args: list[str]) -> str:
    return go_string(_trim_longest(_to_bytes(value), _to_bytes(args[0]))) if args else value


def _trim_shortest_suffix(value: str, args: list[str]) -> str:
    if not args:
        return value
    trimmed = _trim_shortest(_reverse(_to_bytes(value)), _reverse(_to_bytes(args[0])))
    return go_string(_reverse(trimmed))


def _trim_longest_suffix(value: str, args: list[str]) -> str:
    if not args:
        return value
    trimmed = _trim_longest(_reverse(_to_bytes(value)), _reverse(_to_bytes(args[0])))
    return go_string(_reverse(trimmed))


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
