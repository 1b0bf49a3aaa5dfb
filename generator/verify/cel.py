"""The CEL engine Kyverno's policies are evaluated with: ``common-expression-language`` (cel-rust) with the
Kubernetes extensions, the optional syntax rewritten (``celoptional``), Kyverno's pure libraries (``kyvernolibs``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cel
from cel.stdlib import EXTENSIONS

from generator.errors import FleetgenError
from generator.verify import celoptional, kyvernolibs

Obj = dict[str, Any]


POLICY_GROUP = "policies.kyverno.io"


#: Extensions of ``cel.stdlib`` registered as CEL functions (the subset Kubernetes' CEL environment has).
CEL_EXTENSIONS = ("strings", "core", "sets")


#: Operators, macros' helpers and the functions cel-rust implements natively.
NATIVE_FUNCTIONS = frozenset(
    {
        "!_",
        "-_",
        "@in",
        "@not_strictly_false",
        "_!=_",
        "_%_",
        "_&&_",
        "_*_",
        "_+_",
        "_-_",
        "_/_",
        "_<=_",
        "_<_",
        "_==_",
        "_>=_",
        "_>_",
        "_?_:_",
        "_[_]",
        "_||_",
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "timestamp",
        "duration",
        "dyn",
        "type",
    }
)


EXTENSION_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: function for library in CEL_EXTENSIONS for name, function in EXTENSIONS[library].items()
}


#: What the offline engine evaluates: CEL's own functions, the extensions above, Kyverno's ``resource`` library
#: (answered from the objects the evaluator knows, see Evaluator), optional chains and Kyverno's pure libraries.
SUPPORTED_FUNCTIONS = NATIVE_FUNCTIONS | {name.rpartition(".")[2] for name in EXTENSION_FUNCTIONS} | {
    "get", "Get", "list", "List", "ToGVR", celoptional.FUNCTION, *kyvernolibs.FUNCTIONS
}


VARIABLE_USE = re.compile(r"\bvariables\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")


class PolicyError(FleetgenError):
    """A policy cannot be evaluated offline: malformed, or CEL the engine does not support."""


@dataclass(frozen=True)
class Expression:
    """One compiled CEL expression and where it is written (for messages)."""

    where: str
    source: str
    program: cel.Program = field(compare=False)
    uses: tuple[str, ...]


def compile_expression(source: str, where: str) -> Expression:
    """Compile ``source``; raise PolicyError for syntax or functions the engine does not support."""
    if not isinstance(source, str) or not source.strip():
        raise PolicyError(f"{where}: expected a CEL expression, got {source!r}")
    try:
        rewritten = celoptional.desugar(source)
    except celoptional.OptionalSyntaxError as exc:
        raise PolicyError(f"{where}: CEL optional syntax the offline engine does not evaluate: {exc}") from exc
    try:
        program = cel.compile(rewritten)
    except (ValueError, RuntimeError) as exc:
        detail = str(exc).strip().replace("\n", "\n    ")
        raise PolicyError(f"{where}: CEL the offline engine cannot parse:\n    {detail}") from exc
    unknown = sorted(set(program.functions()) - SUPPORTED_FUNCTIONS)
    if unknown:
        raise PolicyError(
            f"{where}: CEL function(s) the offline engine does not support: {', '.join(unknown)} "
            f"(supported: the CEL standard functions and the {', '.join(CEL_EXTENSIONS)} extensions)"
        )
    uses = []
    for match in VARIABLE_USE.finditer(source):
        name = match.group(1) or match.group(2)
        if name not in uses:
            uses.append(name)
    return Expression(where, source, program, tuple(uses))


class EvaluationError(Exception):
    """A CEL expression failed at run time."""


def cel_context() -> cel.Context:
    context = cel.Context()
    for name, function in EXTENSION_FUNCTIONS.items():
        context.add_function(name, function)
    context.add_function(celoptional.FUNCTION, celoptional.optional_chain)
    context.add_function("string", _string_fallback)
    for name, function in kyvernolibs.FUNCTIONS.items():
        context.add_function(name, function)
    return context


def _string_fallback(value: Any) -> str:
    """``string(bool)``, which the CEL spec defines and cel-rust 0.10 lacks (it calls this only when it has none)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    raise TypeError(f"string() of {type(value).__name__} is not supported")
