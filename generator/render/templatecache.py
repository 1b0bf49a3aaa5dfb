"""Compiled templates kept between processes: Jinja's bytecode cache, keyed by everything that shapes the code.

Every fleetgen process compiles the templates it renders (0.01 s and more each: 0.14 s for the reference fleet,
0.03-0.07 s in a render after a one-cluster edit of a 1000-cluster fleet). Jinja can keep the compiled code in a
``BytecodeCache`` (jinja2 3.1 ``bccache.py``): a bucket per template, checked against the sha1 of the template's
source and against a magic holding Jinja's bytecode format and the running Python's bytecode magic. Its key is
the template's name and file only, not the environment, although the lexer and code generator read the
environment's settings (delimiters, ``trim_blocks``, ``lstrip_blocks``, ``keep_trailing_newline``, newline,
``autoescape``, extensions, ``optimized``, async, how ``finalize`` and each filter and test take their arguments),
Jinja's own code generator changes between releases without a new bytecode format, and the optimizer folds
constant expressions at compile time through ``finalize`` and the filters, so their code is baked into the
compiled template. ``SaltedBytecodeCache`` therefore puts all of those settings and fleetgen's code fingerprint
(every module, template and data file of the package, and the versions of Jinja, MarkupSafe and the other
libraries that shape planned text: ``generator.fingerprint``) in the key: another setting, another filter, any
change of fleetgen's code or another library release compiles afresh.

The files live in Jinja's default folder (``FileSystemBytecodeCache()``: ``$TMPDIR/_jinja2-cache-<uid>``, created
mode 0700 and refused when another user owns it or can write to it), never in the fleet repository: loading
compiled code runs it, so it must come from a folder only this user can write (a cache restored into a checkout,
by CI for instance, could otherwise carry code). Writes are atomic (a temporary file renamed into place), and a
bucket that does not read back (another format, truncated) is compiled again.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

import jinja2
from jinja2.bccache import Bucket
from jinja2.utils import _PassArg

from generator.fingerprint import package_fingerprint

#: Bump when what a cached template is keyed by changes.
TEMPLATE_CACHE_FORMAT = "fleetgen-template-cache/1"
#: Set to ``0`` to compile every template in each process (no bytecode read or written).
TEMPLATE_CACHE_ENV = "FLEETGEN_TEMPLATE_CACHE"


def compile_settings(environment: jinja2.Environment) -> str:
    """Everything the code Jinja compiles a template into depends on, besides its source: ``environment``'s
    settings, how its finalize, filters and tests take arguments, Jinja's release and fleetgen's code."""
    finalize = environment.finalize
    return repr((
        TEMPLATE_CACHE_FORMAT, jinja2.__version__,
        environment.block_start_string, environment.block_end_string, environment.variable_start_string,
        environment.variable_end_string, environment.comment_start_string, environment.comment_end_string,
        environment.line_statement_prefix, environment.line_comment_prefix, environment.trim_blocks,
        environment.lstrip_blocks, environment.newline_sequence, environment.keep_trailing_newline,
        environment.autoescape if isinstance(environment.autoescape, bool) else "callable",
        None if finalize is None else _pass_arg(finalize),
        sorted(environment.extensions), environment.optimized, environment.is_async,
        sorted((name, _pass_arg(function)) for name, function in environment.filters.items()),
        sorted((name, _pass_arg(function)) for name, function in environment.tests.items()),
        package_fingerprint(),
    ))


def _pass_arg(function: Any) -> str:
    """What Jinja passes ``function`` first (a context, an eval context, the environment, or nothing)."""
    return str(_PassArg.from_obj(function))


class SaltedBytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's file-system bytecode cache with each bucket keyed by the environment's compile settings too."""

    def get_bucket(self, environment: jinja2.Environment, name: str, filename: str | None, source: str) -> Bucket:
        """The bucket of ``name`` compiled by ``environment`` (Jinja's key, salted by ``compile_settings``)."""
        key = hashlib.sha256(
            f"{compile_settings(environment)}\0{name}\0{filename or ''}".encode("utf-8", "surrogatepass")
        ).hexdigest()
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket


@functools.cache
def template_cache() -> SaltedBytecodeCache | None:
    """This process's bytecode cache (None: turned off by ``$FLEETGEN_TEMPLATE_CACHE=0``, or no private folder
    could be made for it)."""
    if os.environ.get(TEMPLATE_CACHE_ENV, "").strip() == "0":
        return None
    try:
        return SaltedBytecodeCache()
    except (RuntimeError, OSError):  # Jinja refuses a folder another user could write to
        return None
