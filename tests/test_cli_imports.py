"""Each subcommand imports only the stages it runs: ``fleetgen render`` loads neither the build nor the checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_SCRIPT = """
import json, sys
from generator.cli import main, parser
parser().parse_args(sys.argv[1:2])
before = sorted(m for m in sys.modules if m.startswith("generator."))
code = main(sys.argv[1:]) if len(sys.argv) > 2 else 0
after = sorted(m for m in sys.modules if m.startswith("generator.") or m.split(".")[0] in ("cel", "jsonschema"))
print(json.dumps({"code": code, "before": before, "after": after}))
"""


def _modules(*argv: str) -> tuple[int, list[str], list[str]]:
    """(exit code, modules imported after parsing the arguments, after running the command) in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _SCRIPT, *argv], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return int(found["code"]), list(found["before"]), list(found["after"])


def test_importing_the_cli_and_parsing_imports_no_stage() -> None:
    _, parsed, _ = _modules("render")
    assert [m for m in parsed if m.split(".")[1] in ("inventory", "render", "build", "verify")] == []


def test_render_imports_neither_the_build_nor_the_checks(tmp_path: Path) -> None:
    code, _, after = _modules("render", str(ROOT), "--out", str(tmp_path / "out"))
    assert code == 0
    assert "generator.render.pipeline" in after  # it did render
    assert [m for m in after if m.startswith(("generator.build", "generator.verify", "cel", "jsonschema"))] == []
