"""Run fleetgen commands in one process, as a user would, and report each one's exit code and output as JSON.

Used by tests/test_bad_inputs.py in a subprocess with a memory limit and a timeout:
``python corpus_worker.py JOBS_JSON`` where each job is ``{"cwd": DIR, "argv": [...]}``. An exception
escaping ``main`` is what a user would see as a traceback, so it is reported in the output (with the word
"Traceback") rather than swallowed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import time
import traceback

from generator.cli import main


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(cwd: str, argv: list[str]) -> dict[str, object]:
    """One command in ``cwd``: exit code, stdout + stderr, wall and CPU seconds."""
    os.chdir(cwd)
    out = io.StringIO()
    started, cpu = time.monotonic(), _cpu()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:
            out.write(traceback.format_exc())
            code = -1
    return {
        "argv": argv,
        "code": code,
        "output": out.getvalue(),
        "seconds": time.monotonic() - started,
        "cpu_seconds": _cpu() - cpu,
    }


if __name__ == "__main__":
    jobs: list[dict[str, object]] = json.loads(sys.argv[1])
    results = [run(str(job["cwd"]), list(job["argv"])) for job in jobs]  # type: ignore[call-overload]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"results": results, "peak_mib": peak_kib / 1024}))
