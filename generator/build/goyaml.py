"""go-yaml v2 as sigs.k8s.io/yaml uses it: scalar resolution (resolve.go), the emitter (encode.go +
emitterc.go) for JSON-shaped data, and decoding back to JSON (YAMLToJSON), with Go's number formatting.

Post-build substitution sees exactly the text this emitter prints and reads its result back by these rules (see
``generator.build.substitute`` for the upstream sources)."""

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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

from generator.build.envsubst import go_string
from generator.build.model import SubstitutionError

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


def json_compatible(value: Any, where: str = "") -> Any:
    """kyaml ``MarshalJSON``: reject what ``json.Marshal`` rejects, turn dates into their text."""
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SubstitutionError(f"json: unsupported type: non-string mapping key {key!r}{where}")
            result[key] = json_compatible(item, f"{where}.{key}")
        return result
    if isinstance(value, list | tuple):
        return [json_compatible(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise SubstitutionError(f"json: unsupported value: {_go_float_word(value)}")
    if isinstance(value, datetime.date):  # go-yaml keeps timestamps as their source text
        return value.isoformat()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise SubstitutionError(f"json: unsupported type: {type(value).__name__}{where}")


def _go_float_word(value: float) -> str:
    return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"


def dump_v2(obj: dict[str, Any]) -> str:
    """``res.AsYAML()``: the YAML text Flux hands to envsubst."""
    emitter = _Emitter()
    emitter.node(obj, mapping_context=False)
    return emitter.text()


# --------------------------------------------------------------------------------------------------
# YAMLToJSON: go-yaml v2 decoding of the substituted text, then the JSON conversions
# --------------------------------------------------------------------------------------------------

_TAG_PREFIX = "tag:yaml.org,2002:"
_RESOLVABLE_TAGS = {f"{_TAG_PREFIX}{name}" for name in ("str", "bool", "int", "float", "null", "timestamp")}


class GoYamlError(Exception):
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
                raise GoYamlError(f"yaml: unknown anchor '{anchor}' referenced")
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
            raise GoYamlError(f"yaml: unexpected event {type(event).__name__}")
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
                raise GoYamlError(f"yaml: invalid map key: {key!r}")
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
            raise GoYamlError("yaml: map merge requires map or sequence of maps as the value")
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
                return go_string(base64.b64decode(re.sub("[\r\n]", "", text), validate=True))
            except (binascii.Error, ValueError) as err:
                raise GoYamlError("yaml: !!binary value contains invalid base64 data") from err
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
        raise GoYamlError(f"yaml: cannot decode !!{kind} `{text}` as a !!{wanted}")


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
    raise GoYamlError(f"unsupported map key of type: {type_name}, key: {shown}, value: {value!r}")


def _to_json_object(value: Any) -> Any:
    """YAMLToJSON + json.Marshal: string keys, and no NaN or infinities."""
    if isinstance(value, _GoMap):
        return {_json_key(key, item): _to_json_object(item) for key, item in value}
    if isinstance(value, list):
        return [_to_json_object(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise GoYamlError(f"json: unsupported value: {_go_float_word(value)}")
    return value


def through_float64(value: Any) -> Any:
    """kyaml ``UnmarshalJSON`` makes every number a float64; the final ``AsYaml`` prints integral ones as ints."""
    if isinstance(value, dict):
        return {key: through_float64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [through_float64(item) for item in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    number = float(value)
    return int(number) if number.is_integer() and -(2**63) <= number < 2**64 else number


def reorder_like(result: Any, original: Any) -> Any:
    """Give mappings the input's key order where the keys are unchanged (Flux's own output is sorted)."""
    if isinstance(result, dict) and isinstance(original, dict):
        order = list(original) if set(result) == set(original) else list(result)
        return {key: reorder_like(result[key], original.get(key)) for key in order}
    if isinstance(result, list) and isinstance(original, list) and len(result) == len(original):
        return [reorder_like(item, source) for item, source in zip(result, original, strict=True)]
    return result


def load_v2(text: str) -> Any:
    """``yaml.YAMLToJSON`` of the substituted text, as Python data with JSON-shaped values."""
    if re.search("[\ud800-\udfff]", text):
        raise GoYamlError("yaml: invalid leading UTF-8 octet")
    try:
        return _to_json_object(_V2Decoder(iter(YAML(typ="safe").parse(text))).document())
    except YAMLError as err:
        raise GoYamlError(f"yaml: {_yaml_error_text(err)}") from err


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
