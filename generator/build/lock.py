"""``fleetgen.lock``: the upstream charts a fleet templates, pinned to the bytes that were reviewed.

One entry per chart request as Flux makes it (source kind, source URL, chart name, version or OCI reference):
the version it resolved to, the sha256 of the chart archive and, for OCI, the manifest digest. ``fleetgen
lock`` writes it (sorted, so byte-identical for the same charts); the build reads it and refuses a chart
whose bytes differ. The file sits next to ``inventory/`` and is committed with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.errors import UsageError
from generator.yamlio import dump_documents, load_documents

LOCK_FILE = "fleetgen.lock"
LOCK_FORMAT = 1
_HEADER = (
    "# fleetgen.lock: the upstream Helm charts this fleet templates, pinned by archive sha256.\n"
    "# Written by `fleetgen lock` (or `invoke lock`); do not edit. A chart whose bytes differ fails the build.\n"
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, order=True)
class ChartRequest:
    """A chart as a Flux source asks for it.

    ``kind`` is the Flux source kind (HelmRepository or OCIRepository); ``source`` its URL (for an
    OCIRepository the chart's own repository); ``chart`` the chart name; ``ref`` the version as written
    (an exact version or a semver range), or for an OCIRepository ``tag:<t>``, ``semver:<range>`` or
    ``digest:<sha256:...>``.
    """

    kind: str
    source: str
    chart: str
    ref: str

    @property
    def label(self) -> str:
        """``chart ref (source)`` for messages."""
        return f"chart {self.chart} {self.ref} ({self.kind} {self.source})"


@dataclass(frozen=True)
class LockedChart:
    """What a request resolved to when it was locked."""

    version: str
    sha256: str
    digest: str = ""


@dataclass(frozen=True)
class Lock:
    """The parsed lock file: request → locked chart."""

    charts: Mapping[ChartRequest, LockedChart]

    def get(self, request: ChartRequest) -> LockedChart | None:
        """The locked chart of a request, if locked."""
        return self.charts.get(request)


def lock_path(root: Path) -> Path:
    """Where a fleet's lock file lives: next to its ``inventory/`` folder."""
    return root / LOCK_FILE


def read_lock(path: Path) -> Lock:
    """The lock at path (empty when the file does not exist); a malformed lock is a usage error."""
    if not path.is_file():
        return Lock({})
    try:
        docs = load_documents(path.read_text(encoding="utf-8"))
    except Exception as exc:  # the YAML reader raises several unrelated types
        raise UsageError(f"{path}: not valid YAML ({exc}); re-create it with `fleetgen lock`") from exc
    data = docs[0] if docs else {}
    if not isinstance(data, Mapping) or data.get("version") != LOCK_FORMAT or not isinstance(data.get("charts"), list):
        raise UsageError(f"{path}: expected `version: {LOCK_FORMAT}` and a `charts` list; re-create it with "
                         "`fleetgen lock`")
    charts: dict[ChartRequest, LockedChart] = {}
    for index, entry in enumerate(data["charts"]):
        charts.update([_entry(entry, f"{path}: charts[{index}]")])
    return Lock(charts)


def _entry(entry: Any, where: str) -> tuple[ChartRequest, LockedChart]:
    """One lock entry, checked."""
    fields = ("kind", "source", "chart", "ref", "version", "sha256")
    if not isinstance(entry, Mapping) or any(not isinstance(entry.get(f), str) or not entry[f] for f in fields):
        raise UsageError(f"{where}: needs the text fields {', '.join(fields)}; re-create it with `fleetgen lock`")
    if entry["kind"] not in ("HelmRepository", "OCIRepository"):
        raise UsageError(f"{where}: kind must be HelmRepository or OCIRepository, not {entry['kind']!r}")
    if not _SHA256.match(entry["sha256"]) or (entry.get("digest") and not _DIGEST.match(str(entry["digest"]))):
        raise UsageError(f"{where}: sha256 must be 64 hex digits and digest sha256:<64 hex digits>")
    request = ChartRequest(entry["kind"], entry["source"], entry["chart"], entry["ref"])
    return request, LockedChart(entry["version"], entry["sha256"], str(entry.get("digest") or ""))


def lock_text(charts: Iterable[tuple[ChartRequest, LockedChart]]) -> str:
    """The lock file's text: header plus entries sorted by request (deterministic)."""
    entries = []
    for request, locked in sorted(dict(charts).items()):
        entry = {"kind": request.kind, "source": request.source, "chart": request.chart, "ref": request.ref,
                 "version": locked.version, "sha256": locked.sha256}
        if locked.digest:
            entry["digest"] = locked.digest
        entries.append(entry)
    return _HEADER + dump_documents([{"version": LOCK_FORMAT, "charts": entries}])


# --- `fleetgen lock` ----------------------------------------------------------------------------------------


def lock_changes(old: Lock, new: Lock) -> list[str]:
    """``added:``/``changed:``/``removed:`` lines between two locks, sorted."""
    lines = []
    for request in sorted(set(old.charts) | set(new.charts)):
        before, after = old.get(request), new.get(request)
        if before is None and after is not None:
            lines.append(f"added: {request.label} = {after.version} sha256:{after.sha256}")
        elif after is None and before is not None:
            lines.append(f"removed: {request.label}")
        elif before != after and before is not None and after is not None:
            lines.append(f"changed: {request.label}: {before.version} sha256:{before.sha256} -> "
                         f"{after.version} sha256:{after.sha256}")
    return lines
