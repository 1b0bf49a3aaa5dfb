"""CEL's optional field selection (``a.?b.?c.orValue(d)``) for an engine that does not parse it.

Neither CEL engine on PyPI parses ``.?`` (``common-expression-language`` 0.10 reports "unsupported syntax '.?'",
``cel-python`` 0.5 a parse error), while Kyverno's policies use it widely. A chain of selections and indexes that
contains ``.?`` and ends in ``.orValue(x)``, ``.hasValue()`` or ``.value()`` is rewritten into one call of
:data:`FUNCTION` with the chain's operand, its keys and the default, keeping cel-go's semantics
(github.com/google/cel-go ``ext``/optional types, as Kubernetes and Kyverno enable them): once a selection is
optional, every later selection or index of the chain is too, and an absent field or key makes the whole chain
``optional.none()``. Anything else that uses optionals (``[?x]`` in a literal, ``{?k: v}``, passing an optional
around) is refused by :class:`OptionalSyntaxError`.
"""

from __future__ import annotations

from typing import Any

#: The function the rewritten chains call (registered on the evaluator's CEL context).
FUNCTION = "fleetgenOptionalChain"
_IDENT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_PAIRS = {")": "(", "]": "[", "}": "{"}
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_ABSENT = object()


class OptionalSyntaxError(ValueError):
    """An optional construct this rewrite does not cover."""


def _string_spans(source: str) -> list[tuple[int, int]]:
    """(start, end) of every string literal (single, double, triple quoted; raw or not)."""
    spans, index = [], 0
    while index < len(source):
        char = source[index]
        if char in "'\"":
            quote = source[index : index + 3] if source[index : index + 3] in ("'''", '"""') else char
            end = index + len(quote)
            raw = index > 0 and source[index - 1] in "rR"
            while end < len(source) and not source.startswith(quote, end):
                end += 2 if source[end] == "\\" and not raw else 1
            spans.append((index, end + len(quote)))
            index = end + len(quote)
        else:
            index += 1
    return spans


def _in_string(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


def _find_optional(source: str, spans: list[tuple[int, int]]) -> int:
    for index in range(len(source) - 1):
        if source[index : index + 2] in (".?", "[?") and not _in_string(index, spans):
            return index
    return -1


def _matching(source: str, start: int, spans: list[tuple[int, int]]) -> int:
    """Index just after the bracket that closes the one at ``start``."""
    depth, index = 0, start
    while index < len(source):
        if not _in_string(index, spans):
            if source[index] in _CLOSERS:
                depth += 1
            elif source[index] in _PAIRS:
                depth -= 1
                if depth == 0:
                    return index + 1
        index += 1
    raise OptionalSyntaxError("unbalanced brackets")


def _operand_start(source: str, end: int, spans: list[tuple[int, int]]) -> int:
    """Where the operand that ends at ``end`` (exclusive) starts: identifiers, dots, calls and indexes."""
    index = end
    while index > 0:
        char = source[index - 1]
        if char in _PAIRS and not _in_string(index - 1, spans):
            depth, cursor = 0, index - 1
            while cursor >= 0:
                if not _in_string(cursor, spans):
                    if source[cursor] in _PAIRS:
                        depth += 1
                    elif source[cursor] in _CLOSERS:
                        depth -= 1
                        if depth == 0:
                            break
                cursor -= 1
            index = cursor
        elif char in _IDENT or char == ".":
            index -= 1
        else:
            break
    if index == end:
        raise OptionalSyntaxError("'.?' without an operand")
    return index


def _rewrite_once(source: str) -> str | None:
    spans = _string_spans(source)
    position = _find_optional(source, spans)
    if position < 0:
        return None
    if source[position] == "[":
        before = source[:position].rstrip()
        if not before or not (before[-1] in _IDENT or before[-1] in ")]"):
            raise OptionalSyntaxError("optional list or map literal entries ('[?x]', '{?k: v}')")
    start = _operand_start(source, position, spans)
    operand = source[start:position]
    keys: list[str] = []
    index = position
    while True:
        while index < len(source) and source[index].isspace() and source[index:].lstrip()[:1] in (".", "["):
            index += 1
        if source.startswith(".?", index) or (
            source[index : index + 1] == "." and source[index + 1 : index + 2] in _IDENT
        ):
            name_start = index + (2 if source.startswith(".?", index) else 1)
            name_end = name_start
            while name_end < len(source) and source[name_end] in _IDENT:
                name_end += 1
            name = source[name_start:name_end]
            after = source[name_end:].lstrip()
            if after.startswith("("):
                call_end = _matching(source, source.index("(", name_end), spans)
                argument = source[source.index("(", name_end) + 1 : call_end - 1].strip()
                if name == "orValue":
                    mode, default, index = "orValue", argument, call_end
                elif name in ("hasValue", "value") and not argument:
                    mode, default, index = name, "null", call_end
                else:
                    raise OptionalSyntaxError(f"'.{name}()' on an optional value")
                break
            if not name:
                raise OptionalSyntaxError("'.?' without a field name")
            keys.append(repr(name))
            index = name_end
        elif source.startswith("[", index):
            close = _matching(source, index, spans)
            inner = source[index + 1 : close - 1]
            keys.append(inner[1:].strip() if inner.startswith("?") else inner.strip())
            index = close
        else:
            raise OptionalSyntaxError("an optional value used other than by orValue(), hasValue() or value()")
    call = f"{FUNCTION}({operand}, [{', '.join(keys)}], '{mode}', {default})"
    return source[:start] + call + source[index:]


def desugar(source: str) -> str:
    """``source`` with every optional chain rewritten (unchanged without one); OptionalSyntaxError if unsupported."""
    for _ in range(1000):
        rewritten = _rewrite_once(source)
        if rewritten is None:
            return source
        source = rewritten
    raise OptionalSyntaxError("too many optional chains")


def optional_chain(operand: Any, keys: list[Any], mode: str, default: Any) -> Any:
    """The value of a rewritten chain: walk ``keys`` from ``operand``; absent anywhere → none."""
    value = operand
    for key in keys:
        in_map = isinstance(value, dict) and key in value
        in_list = (
            isinstance(value, list) and isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(value)
        )
        if in_map or in_list:
            value = value[key]
        else:
            value = _ABSENT
            break
    if mode == "hasValue":
        return value is not _ABSENT
    if value is _ABSENT:
        if mode == "value":
            raise ValueError("optional.none() dereference")
        return default
    return value
