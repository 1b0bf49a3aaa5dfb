"""The one wrapper around every subprocess fleetgen runs (helm, kustomize, git)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from generator.errors import ToolError


@dataclass(frozen=True)
class Command:
    """A program plus fixed leading arguments, e.g. ``Command(("kubectl", "kustomize"))``."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    def run(
        self,
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        stdin: str | None = None,
        timeout: float = 300.0,
    ) -> str:
        """Run with extra arguments; return stdout, or raise ToolError naming the command and its stderr."""
        full: Sequence[str] = [*self.argv, *(os.fspath(a) for a in args)]
        environment = {**os.environ, **self.env} if self.env else None
        try:
            done = subprocess.run(
                full,
                cwd=cwd,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=environment,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ToolError(f"{full[0]}: not found ({exc.strerror})") from exc
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"{' '.join(full)}: timed out after {timeout:.0f}s") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()
            raise ToolError(f"{' '.join(full)} (in {cwd or '.'}) exited {done.returncode}:\n{detail}")
        return done.stdout
