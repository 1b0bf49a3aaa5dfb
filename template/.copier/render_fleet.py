"""Re-render the scaffold after `copier copy`/`copier update`, but only with the fleetgen its pyproject pins.

Run by copier (see _tasks and _migrations in copier.yml) with copier's own interpreter, from the scaffold's
root. It finds the fleetgen that would render (importable by this interpreter, else `fleetgen` on PATH),
compares its version with the ref pinned in pyproject.toml (`"fleetgen @ git+URL@REF"`), and renders only
when they agree. Otherwise it renders nothing and prints the exact command that installs the pinned
fleetgen and renders: an update's output must come from the fleetgen the update brought, not the old one.
It never fails the copier run (the files are already in place; the message says what to do next).

Set FLEETGEN_IGNORE_PIN=1 to render with whatever fleetgen is installed (for work on the template itself).
Needs nothing beyond copier's own dependencies (packaging).

    python render_fleet.py [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

#: The pin line of the scaffold's pyproject.toml: `"fleetgen @ git+URL@REF",` (REF: a tag or a commit).
PIN = re.compile(r'^\s*"fleetgen @ (?P<url>git\+[^"\s]+?)(?:@(?P<ref>[^"@\s/]+))?",?\s*$', re.MULTILINE)
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True)
class Fleetgen:
    """A fleetgen that can render: the command that runs it, its version, the interpreter it belongs to."""

    argv: tuple[str, ...]
    version: str
    python: str


def read_pin(pyproject: Path) -> tuple[str, str] | None:
    """(url, ref) of the fleetgen pin in pyproject.toml; ref is '' when the pin names none."""
    if not pyproject.is_file():
        return None
    found = PIN.search(pyproject.read_text(encoding="utf-8"))
    return (found["url"], found["ref"] or "") if found else None


def _version_of(argv: tuple[str, ...]) -> str | None:
    done = subprocess.run([*argv, "--version"], capture_output=True, text=True, check=False)
    words = done.stdout.split()
    return words[-1] if done.returncode == 0 and len(words) == 2 and words[0] == "fleetgen" else None


def _interpreter_of(script: str) -> str:
    """The Python a console script runs with (its #! line), or plain `python` when unknown."""
    try:
        first = Path(script).read_bytes().split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return "python"
    return first[2:].strip() if first.startswith("#!") and "python" in first else "python"


def find_fleetgen() -> Fleetgen | None:
    """The fleetgen that would render: importable by this interpreter, else the `fleetgen` command on PATH."""
    module = (sys.executable, "-m", "generator.cli")
    version = _version_of(module)
    if version is not None:
        return Fleetgen(module, version, sys.executable)
    script = shutil.which("fleetgen")
    if script is not None and (version := _version_of((script,))) is not None:
        return Fleetgen((script,), version, _interpreter_of(script))
    return None


def matches(installed: str, ref: str) -> bool:
    """True when an installed fleetgen version is the one built from ``ref`` (a release tag or a commit)."""
    if COMMIT.match(ref):  # setuptools-scm marks untagged builds with +g<short hash>
        return re.search(rf"(^|[+.])g{ref[:7]}", installed) is not None
    try:
        return Version(installed) == Version(ref)
    except InvalidVersion:
        return False


def main(argv: list[str] | None = None) -> int:
    """Render when the installed fleetgen is the pinned one; otherwise say how to get it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    root = args.root.resolve()
    pin = read_pin(root / "pyproject.toml")
    fleetgen = find_fleetgen()
    fix = f"cd {shlex.quote(str(root))} && {{python}} -m pip install -e . && invoke render"
    if fleetgen is None:
        print("fleetgen is not installed here, so nothing was rendered. In your virtualenv run:", file=sys.stderr)
        print("  " + fix.format(python="python"), file=sys.stderr)
        return 0
    ignore = os.environ.get("FLEETGEN_IGNORE_PIN", "") not in ("", "0")
    if pin is not None and pin[1] and not ignore and not matches(fleetgen.version, pin[1]):
        print(
            f"fleetgen {fleetgen.version} is installed, but pyproject.toml pins fleetgen @ {pin[0]}@{pin[1]}:\n"
            "nothing was rendered with the wrong fleetgen. Install the pinned one and render:\n"
            "  " + fix.format(python=shlex.quote(fleetgen.python)),
            file=sys.stderr,
        )
        return 0
    done = subprocess.run([*fleetgen.argv, "render", str(root), "--out", str(root)], check=False)
    if done.returncode != 0:
        print("warning: the render failed (see above); fix it, then run `invoke render`", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
