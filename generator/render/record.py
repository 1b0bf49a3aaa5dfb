"""The render record: what ``fleetgen build`` needs from the last successful ``render``, so it does not plan again.

``render`` writes ``ROOT/.cache/fleetgen/record/render.json`` after its output tree is written:

- the digest of every input the plan read (``inputs_digest``): the code and data of the generator package
  (``generator.fingerprint.package_fingerprint``: ``build`` reads the record without importing the planner), the
  Python version, the fleet root's path, the date (it
  decides expired policy exceptions and ended support windows, so whether the plan succeeds and what it warns),
  and every entry below ``inventory/``, ``overlays/`` and ``charts/`` (name, kind, symlink target, content);
- the output folder and the sha256 of every file planned (from the manifest the writer has just written: the
  sha256 of each planned text);
- the inventory warnings the render issued, to issue them again;
- the build context: the few facts of the resolved fleet the build reads (``BuildContext``).

``build`` uses the record only when its inputs digest equals the digest of the current inputs (taken before and
after the render's plan, and recorded only when both agree, so an edit during the render leaves no record); any
other record (missing, corrupt, another format, another root) is ignored and the fleet planned as before. The
files the build reads come from the output folder, each checked against its recorded sha256: a file changed,
missing or unreadable there makes the build plan after all. So the record can make a build faster, never
different. Render removes the record before it writes and writes it again only on success.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.fingerprint import package_fingerprint

if TYPE_CHECKING:
    from generator.inventory.resolve import ResolvedFleet

#: Bump when the record's layout or the meaning of a field changes.
RECORD_FORMAT = "fleetgen-render-record/2"
#: The folders of the fleet root the plan reads (besides the generator's own code and data).
INPUT_FOLDERS = ("inventory", "overlays", "charts")


def record_path(root: Path) -> Path:
    """Where ``render`` keeps its record for ``build``: ``ROOT/.cache/fleetgen/record/render.json``."""
    return root / ".cache" / "fleetgen" / "record" / "render.json"


# --- the inputs ------------------------------------------------------------------------------------------------


def inputs_digest(root: Path, today: datetime.date) -> str | None:
    """sha256 of everything the plan of the fleet at ``root`` reads on ``today``; None when a folder cannot be
    read (no record then)."""
    digest = hashlib.sha256()
    head = [RECORD_FORMAT, package_fingerprint(), sys.version, str(root.resolve()), today.isoformat()]
    digest.update("\0".join(head).encode("utf-8", "surrogatepass") + b"\0")
    try:
        for folder in INPUT_FOLDERS:
            for part in _entries(root / folder, folder, set()):
                digest.update(part)
    except OSError:
        return None
    return digest.hexdigest()


def _entries(path: Path, rel: str, seen: set[tuple[int, int]]) -> Iterator[bytes]:
    """Length-prefixed records of ``path`` and everything below it, in a fixed order: each entry's relative
    name and kind, a symlink's target, a file's size and sha256; symlinked folders followed (each real folder
    once, so a cycle ends)."""

    def part(*fields: str) -> bytes:
        data = [f.encode("utf-8", "surrogatepass") for f in fields]
        return b"".join(b"%d:" % len(d) + d for d in data) + b"\n"

    try:
        st = os.stat(path)  # follows symlinks, as the loader does
    except FileNotFoundError:
        link = os.readlink(path) if os.path.islink(path) else ""
        yield part("missing", rel, link)
        return
    if os.path.islink(path):
        yield part("link", rel, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        identity = (st.st_dev, st.st_ino)
        if identity in seen:
            yield part("seen", rel)
            return
        seen.add(identity)
        yield part("dir", rel)
        for name in sorted(os.listdir(path)):
            yield from _entries(path / name, f"{rel}/{name}", seen)
    elif stat.S_ISREG(st.st_mode):
        with open(path, "rb") as handle:
            yield part("file", rel, hashlib.file_digest(handle, "sha256").hexdigest())
    else:
        yield part("other", rel, str(stat.S_IFMT(st.st_mode)))


# --- what the build reads from the resolved fleet ----------------------------------------------------------------


@dataclass(frozen=True)
class BuildContext:
    """What ``build`` reads from the resolved fleet besides the planned files."""

    #: (name, Kubernetes version) of every cluster, in the fleet's order
    clusters: tuple[tuple[str, str], ...]
    #: the folder of the fleet repo inside the git repository Flux syncs, and that repository's URL
    git_path: str
    git_url: str
    #: further folders of that git repository mapped to folders of the output (the Crossplane infrastructure repo)
    mounts: tuple[tuple[str, str], ...]
    #: (hub, folder of the hub's Argo CD objects) when Argo CD delivers the apps
    argocd: tuple[str, str] | None
    #: (chart source, chart, keyring relative to the root) of every chart verified with a keyring
    keyrings: tuple[tuple[str, str, str], ...]

    @classmethod
    def of(cls, fleet: ResolvedFleet) -> BuildContext:
        """The build context of a resolved fleet."""
        crossplane = getattr(fleet.fleet, "crossplane", None)
        mounts = ((str(crossplane.infrastructure_path), "infrastructure"),) if crossplane is not None else ()
        argocd = None
        delivery = getattr(fleet.fleet, "delivery", None)
        if delivery is not None and delivery.apps == "argocd":
            from generator.render.argocd import APPS_DIR, hub

            the_hub = hub(fleet)
            argocd = (the_hub.name, f"fleet/{APPS_DIR}") if the_hub is not None else None
        return cls(
            clusters=tuple((c.name, str(c.settings.kubernetes_version)) for c in fleet.clusters),
            git_path=str(fleet.fleet.git.path), git_url=str(fleet.fleet.git.url), mounts=mounts, argocd=argocd,
            keyrings=chart_keyrings(fleet),
        )

    def to_json(self) -> dict[str, Any]:
        """The context as JSON data."""
        return {"clusters": [list(c) for c in self.clusters], "git_path": self.git_path, "git_url": self.git_url,
                "mounts": [list(m) for m in self.mounts], "argocd": list(self.argocd) if self.argocd else None,
                "keyrings": [list(k) for k in self.keyrings]}

    @classmethod
    def from_json(cls, data: Any) -> BuildContext | None:
        """The context of ``to_json``'s data; None for anything else."""
        if not isinstance(data, dict) or not isinstance(data.get("git_path"), str) or not isinstance(
                data.get("git_url"), str):
            return None
        clusters, mounts, keyrings = (_string_rows(data.get(k), width) for k, width in (
            ("clusters", 2), ("mounts", 2), ("keyrings", 3)))
        argocd = data.get("argocd")
        hub = _string_rows([argocd], 2) if argocd is not None else ()
        if clusters is None or mounts is None or keyrings is None or hub is None:
            return None
        return cls(clusters=tuple((a, b) for a, b in clusters), git_path=data["git_path"], git_url=data["git_url"],
                   mounts=tuple((a, b) for a, b in mounts), argocd=(hub[0][0], hub[0][1]) if hub else None,
                   keyrings=tuple((a, b, c) for a, b, c in keyrings))


def _string_rows(value: Any, width: int) -> tuple[tuple[str, ...], ...] | None:
    """``value`` as rows of ``width`` strings, or None when it is not that."""
    if not isinstance(value, list):
        return None
    rows = []
    for row in value:
        if not isinstance(row, list) or len(row) != width or not all(isinstance(item, str) for item in row):
            return None
        rows.append(tuple(row))
    return tuple(rows)


def chart_keyrings(fleet: ResolvedFleet) -> tuple[tuple[str, str, str], ...]:
    """(source, chart, keyring relative to the root) of every component whose chart asks for provenance
    verification: an OCI chart's source is its repository and name, another chart's its repository URL."""
    found = []
    for component in getattr(fleet, "components", None) or []:
        chart = getattr(component, "chart", None)
        keyring = getattr(chart, "keyring", None) if chart is not None else None
        if chart is None or not keyring:
            continue
        oci = chart.repository.startswith("oci://")
        source = chart.repository.rstrip("/") + "/" + chart.name if oci else chart.repository
        found.append((str(source), str(chart.name), str(keyring)))
    return tuple(found)


# --- warnings --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedWarning:
    """A warning the render issued: its text, and the file and line it was issued from."""

    message: str
    filename: str
    lineno: int


def recorded_warnings(caught: Sequence[warnings.WarningMessage]) -> tuple[RecordedWarning, ...]:
    """The inventory warnings among ``caught``, in order, each distinct one once."""
    from generator.errors import InventoryWarning

    found: dict[str, RecordedWarning] = {}
    for item in caught:
        if issubclass(item.category, InventoryWarning):
            text = str(item.message)
            found.setdefault(text, RecordedWarning(text, item.filename, item.lineno))
    return tuple(found.values())


def reissue(caught: Sequence[warnings.WarningMessage]) -> None:
    """Issue warnings recorded by ``warnings.catch_warnings(record=True)`` again, through the current filters
    (each distinct one once, as the default filter shows a warning once per place)."""
    registry: dict[Any, Any] = {}
    for item in caught:
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno, registry=registry)


def replay(recorded: Sequence[RecordedWarning]) -> None:
    """Issue a record's inventory warnings, as the render did."""
    from generator.errors import InventoryWarning

    registry: dict[Any, Any] = {}
    for item in recorded:
        warnings.warn_explicit(InventoryWarning(item.message), InventoryWarning, item.filename, item.lineno,
                               registry=registry)


# --- the record ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderRecord:
    """A successful render, as the build needs it."""

    inputs: str
    out: Path
    #: sha256 of every planned file (relative to ``out``)
    digests: Mapping[str, str]
    warnings: tuple[RecordedWarning, ...]
    context: BuildContext

    def to_text(self) -> str:
        """The record as ``render`` writes it: the sha256 of its JSON body on the first line, then the body (a
        truncated or damaged record fails that check)."""
        body = json.dumps({
            "format": RECORD_FORMAT, "inputs": self.inputs, "out": str(self.out),
            "warnings": [[w.message, w.filename, w.lineno] for w in self.warnings],
            "context": self.context.to_json(), "digests": dict(self.digests),
        }, ensure_ascii=False, separators=(",", ":"))
        return f"{hashlib.sha256(body.encode('utf-8')).hexdigest()}\n{body}"


def write_record(root: Path, record: RenderRecord) -> None:
    """Store ``record`` atomically; a record that cannot be written only costs the next build its speed."""
    from generator.render.writer import atomic_write

    path = record_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ignore = path.parent / ".gitignore"
        if not ignore.exists() and not ignore.is_symlink():
            atomic_write(ignore, "# fleetgen's record of the last render (machine-local): never commit it\n*\n")
        atomic_write(path, record.to_text())
    except OSError:
        return


def save_record(root: Path, out: Path, rendered: Any, inputs: str, found: Sequence[RecordedWarning]) -> None:
    """Record a render of ``root`` (``rendered``: its ``generator.render.pipeline.Rendered``, planned from inputs
    of digest ``inputs``) just written to ``out``: the file digests are those of the manifest the writer wrote
    (the sha256 of each planned text), taken only when it lists exactly the planned files."""
    from generator.render.writer import MANIFEST

    try:
        manifest = json.loads((out / MANIFEST).read_bytes())
    except (OSError, ValueError, RecursionError):
        return
    digests = manifest.get("files") if isinstance(manifest, dict) else None
    if (not isinstance(digests, dict) or digests.keys() != rendered.files.keys()
            or not all(isinstance(sha, str) for sha in digests.values())):
        return
    write_record(root, RenderRecord(inputs, out.resolve(), digests, tuple(found), BuildContext.of(rendered.fleet)))


def remove_record(root: Path) -> None:
    """Forget the last render's record (before a render changes the output, or when it fails)."""
    try:
        record_path(root).unlink(missing_ok=True)
    except OSError:
        return


def read_record(root: Path) -> RenderRecord | None:
    """The record of the last render of ``root``, when it is well formed and its inputs are exactly the current
    inputs (today's date included); else None."""
    try:
        check, _, body = record_path(root).read_bytes().partition(b"\n")
        if check.decode("ascii", "replace") != hashlib.sha256(body).hexdigest():
            return None
        data = json.loads(body)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        return None
    inputs, out, digests = data.get("inputs"), data.get("out"), data.get("digests")
    context = BuildContext.from_json(data.get("context"))
    found = _warnings_of(data.get("warnings"))
    if (not isinstance(inputs, str) or not isinstance(out, str) or not os.path.isabs(out) or context is None
            or found is None or not isinstance(digests, dict)
            or not all(isinstance(sha, str) for sha in digests.values())):  # (JSON keys are strings)
        return None
    if inputs != inputs_digest(root, datetime.date.today()):
        return None
    return RenderRecord(inputs, Path(out), digests, found, context)


def _warnings_of(value: Any) -> tuple[RecordedWarning, ...] | None:
    if not isinstance(value, list):
        return None
    found = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                or not isinstance(item[1], str) or type(item[2]) is not int):
            return None
        found.append(RecordedWarning(item[0], item[1], item[2]))
    return tuple(found)
