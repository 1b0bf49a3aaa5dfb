"""The compiled-template cache: code read back renders exactly what a fresh compile renders, and is never shared
between environments that compile differently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from generator.render import templatecache
from generator.render.planner import environment, template_environment
from generator.render.templatecache import SaltedBytecodeCache, compile_settings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "{% for item in items %}\n  - {{ item }}\n{% endfor %}\nend\n"


def _environment(cache: jinja2.BytecodeCache | None, **options: object) -> tuple[jinja2.Environment, list[str]]:
    """An environment over one template, counting what it compiles."""
    compiled: list[str] = []

    class Counting(jinja2.Environment):
        def _compile(self, source: str, filename: str) -> object:  # type: ignore[override]
            compiled.append(filename)
            return super()._compile(source, filename)

    env = Counting(loader=jinja2.DictLoader({"t.j2": TEMPLATE}), bytecode_cache=cache, **options)  # type: ignore[arg-type]
    return env, compiled


def test_a_template_read_back_renders_as_compiled(tmp_path: Path) -> None:
    first, compiled = _environment(SaltedBytecodeCache(str(tmp_path)), trim_blocks=True)
    text = first.get_template("t.j2").render(items=["a", "b"])
    assert len(compiled) == 1 and len(list(tmp_path.iterdir())) == 1
    second, compiled_again = _environment(SaltedBytecodeCache(str(tmp_path)), trim_blocks=True)
    assert second.get_template("t.j2").render(items=["a", "b"]) == text == "  - a\n  - b\nend"
    assert compiled_again == []  # read back, not compiled


@pytest.mark.parametrize("options", [
    {"trim_blocks": False}, {"trim_blocks": True, "lstrip_blocks": True}, {"trim_blocks": True, "autoescape": True},
    {"trim_blocks": True, "finalize": lambda value: f"<{value}>"},
    {"trim_blocks": True, "variable_start_string": "{{", "keep_trailing_newline": True},
])
def test_environments_that_compile_differently_share_no_code(tmp_path: Path, options: dict[str, object]) -> None:
    """The same template name and source under other settings: compiled afresh, rendering as without a cache."""
    warm, _ = _environment(SaltedBytecodeCache(str(tmp_path)), trim_blocks=True)
    warm.get_template("t.j2").render(items=["x"])
    other, compiled = _environment(SaltedBytecodeCache(str(tmp_path)), **options)
    uncached, _ = _environment(None, **options)
    assert other.get_template("t.j2").render(items=["<x>"]) == uncached.get_template("t.j2").render(items=["<x>"])
    assert len(compiled) == 1
    assert compile_settings(other) != compile_settings(warm)


def test_the_settings_hold_jinjas_version(monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment()
    before = compile_settings(env)
    monkeypatch.setattr(jinja2, "__version__", "0.0-other")
    assert compile_settings(env) != before


def test_a_damaged_bucket_is_compiled_again(tmp_path: Path) -> None:
    warm, _ = _environment(SaltedBytecodeCache(str(tmp_path)), trim_blocks=True)
    expected = warm.get_template("t.j2").render(items=["a"])
    for damage in (lambda data: data[: len(data) // 2], lambda data: b"", lambda data: data[:-8] + b"\0" * 8):
        for path in tmp_path.iterdir():
            path.write_bytes(damage(path.read_bytes()))
        env, compiled = _environment(SaltedBytecodeCache(str(tmp_path)), trim_blocks=True)
        assert env.get_template("t.j2").render(items=["a"]) == expected
        assert len(compiled) == 1


def test_the_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    templatecache.template_cache.cache_clear()
    try:
        monkeypatch.setenv(templatecache.TEMPLATE_CACHE_ENV, "0")
        assert templatecache.template_cache() is None
        assert template_environment(None).bytecode_cache is None
        monkeypatch.delenv(templatecache.TEMPLATE_CACHE_ENV)
        templatecache.template_cache.cache_clear()
        cache = templatecache.template_cache()
        assert isinstance(cache, SaltedBytecodeCache)
        folder = Path(cache.directory)
        assert folder.stat().st_uid == os.getuid() and folder.stat().st_mode & 0o777 == 0o700
        assert not folder.is_relative_to(ROOT)  # compiled code never comes from the repository
    finally:
        templatecache.template_cache.cache_clear()


_PLAN = """
import hashlib, json, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import jinja2
compiled = []
original = jinja2.Environment._compile
def counting(self, source, filename):
    compiled.append(filename)
    return original(self, source, filename)
jinja2.Environment._compile = counting
from generator.render.pipeline import plan
files = plan(Path(sys.argv[1]), None, jobs=1).files
print(json.dumps([hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest(), len(compiled)]))
"""


def test_the_reference_fleet_plans_the_same_bytes_from_cached_code(tmp_path: Path) -> None:
    """A process that compiles every template, then two that read the compiled code (the second wholly from the
    cache): the same files."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # a fresh cache folder for these processes only

    def run(**extra: str) -> tuple[str, int]:
        done = subprocess.run([sys.executable, "-c", _PLAN, str(ROOT)], env={**env, **extra}, cwd=ROOT,
                              capture_output=True, text=True, check=True)
        digest, compiled = json.loads(done.stdout.strip().splitlines()[-1])
        return str(digest), int(compiled)

    uncached, compiled_uncached = run(**{templatecache.TEMPLATE_CACHE_ENV: "0"})
    first, _ = run()
    second, compiled_second = run()
    assert uncached == first == second
    assert compiled_uncached > 10 and compiled_second == 0


def test_a_filter_folded_at_compile_time_is_in_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jinja's optimizer runs filters and finalize on constants while compiling: code compiled under other filter
    code (another fleetgen) must not be read back."""
    source = "{{ 'abc' | shout }}"

    def render(shout: object, code: str) -> tuple[str, int]:
        monkeypatch.setattr(templatecache, "package_fingerprint", lambda: code)
        compiled: list[str] = []

        class Counting(jinja2.Environment):
            def _compile(self, source: str, filename: str) -> object:  # type: ignore[override]
                compiled.append(filename)
                return super()._compile(source, filename)

        env = Counting(loader=jinja2.DictLoader({"t.j2": source}), bytecode_cache=SaltedBytecodeCache(str(tmp_path)))
        env.filters["shout"] = shout
        return env.get_template("t.j2").render(), len(compiled)

    assert render(str.upper, "one") == ("ABC", 1)
    assert render(str.upper, "one") == ("ABC", 0)  # read back
    assert render(lambda text: text + "!", "two") == ("abc!", 1)  # other code: compiled, not the folded "ABC"
