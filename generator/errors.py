"""The one small exception tree of fleetgen. Only the CLI turns these into messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class FleetgenError(Exception):
    """Base of every error fleetgen raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One user-facing problem at a place in the inventory: ``file:line:col: field: message``."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return printable(text)


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\r``, ``\\x1b``), so a key or value read from a
    file can never split, hide or recolour a message line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class InventoryError(FleetgenError):
    """The inventory (or overlays) is invalid. Carries every problem found, sorted by place."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.field, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class InventoryWarning(UserWarning):
    """Something in the inventory worth fixing that does not stop a render (``file:line:col: field: message``).

    Raised through :mod:`warnings`; the CLI prints each once as ``warning: ...`` on stderr.
    """


class UsageError(FleetgenError):
    """The command line asks for something impossible (unknown cluster, bad flag value)."""


class OutputConflict(FleetgenError):
    """Rendering would overwrite or delete files that fleetgen did not write as they are now."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = sorted(paths)
        listing = "\n".join(f"  {p}" for p in self.paths)
        super().__init__(
            "refusing to overwrite generated files that were edited by hand "
            f"(re-run with --force to overwrite):\n{listing}"
        )


class ToolError(FleetgenError):
    """An external tool (helm, kustomize, git) is missing or failed."""
