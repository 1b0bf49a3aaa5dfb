"""The cluster entries known to pass the cross-checks that read one entry alone: kept between renders, so a render
after a one-cluster edit checks that entry (and every rule across entries) instead of every entry again.

Most cross-checks of a cluster read its entry and the fleet-level inventory only (its region and zones, its own
CIDRs, its settings layer's names and variables, its network plan, its node groups, its databases and caches, its
secrets backend): ``checks.ENTRY_RULES`` names them. Their result for an entry is a function of its **key**: the
memo format, the code and data the checks read (``fingerprint``: the inventory package, the data files, the error
type, the pydantic versions), the fleet-level inventory (the ``fleet`` entry, defaults, overlays, components,
apps, teams, exceptions, each as written, with its file name) and the entry as written with its file name. A
render that succeeded had every entry pass every check, so it stores the keys of all its clusters
(``store``: ``ROOT/.cache/fleetgen/checks/passed``, a line per key); the next load skips those rules for an
entry whose key is listed. Rules across entries (overlapping VPCs, peering, the hub, reachability from the hub,
the calendar of Kubernetes versions, which reads today's date) run on every load. An entry with a problem is
never skipped: it was not stored, or its key changed, so its messages and positions are those of a full check.
A missing, unreadable or foreign file skips nothing.
"""

from __future__ import annotations

import functools
import hashlib
import weakref
from pathlib import Path

from generator.files import replace_file
from generator.fingerprint import package_fingerprint, plain_bytes
from generator.inventory.entries import Inventory

#: Bump when the file's layout or the meaning of a key changes.
MEMO_FORMAT = "fleetgen-checked-entries/1"


def memo_path(root: Path) -> Path:
    """Where the keys of the entries that passed are kept: ``ROOT/.cache/fleetgen/checks/passed``."""
    return root / ".cache" / "fleetgen" / "checks" / "passed"


@functools.cache
def fingerprint() -> bytes:
    """A digest of the code and data the entry rules read: every module and data file of the generator package
    and the versions of the libraries that shape what it reads (``package_fingerprint``)."""
    return hashlib.sha256(f"{MEMO_FORMAT}\0{package_fingerprint()}".encode()).digest()


def _fleet_level(inventory: Inventory) -> bytes | None:
    """A digest of the code fingerprint and every inventory entry but the clusters, as written, with its file."""
    layers = [("", inventory.defaults.name, inventory.defaults.data, inventory.defaults.file.file
               if inventory.defaults.file else None)]
    layers += [(name, layer.name, layer.data, layer.file.file if layer.file else None)
               for name, layer in sorted(inventory.overlays.items())]
    entries = [(section, [(s.file.file, s.raw) for s in getattr(inventory, section)])
               for section in ("components", "apps", "teams", "exceptions")]
    data = plain_bytes((inventory.fleet.file.file, inventory.fleet.raw, layers, entries))
    return None if data is None else hashlib.sha256(fingerprint() + data).digest()


#: the entries' digests last computed, with the inventory they are of (held weakly: computed once per load, read
#: by ``passed``, ``store`` and the planner memo's identities, generator/render/memo.py)
_LAST: tuple[weakref.ref[Inventory], dict[int, bytes]] | None = None


def entry_digests(inventory: Inventory) -> dict[int, bytes]:
    """A sha256 of each cluster entry as written with its file name, by the entry's ``id`` (none when the
    inventory holds what pickle cannot write)."""
    global _LAST
    if _LAST is not None and _LAST[0]() is inventory:
        return _LAST[1]
    found: dict[int, bytes] = {}
    for source in inventory.clusters:
        data = plain_bytes((source.file.file, source.raw))
        if data is None:
            found = {}
            break
        found[id(source)] = hashlib.sha256(data).digest()
    _LAST = (weakref.ref(inventory), found)
    return found


def keys(inventory: Inventory) -> dict[int, str]:
    """Each cluster entry's key, by the entry's ``id`` (none when the inventory holds what pickle cannot write)."""
    base = _fleet_level(inventory)
    if base is None:
        return {}
    return {entry: hashlib.sha256(base + digest).hexdigest() for entry, digest in entry_digests(inventory).items()}


def _stored(root: Path) -> set[str]:
    try:
        lines = memo_path(root).read_text(encoding="ascii").split("\n")
    except (OSError, UnicodeDecodeError):
        return set()
    if not lines or lines[0] != MEMO_FORMAT:
        return set()
    return set(lines[1:])


def passed(inventory: Inventory) -> frozenset[int]:
    """The ``id`` of every cluster entry whose key is stored: it passed every entry rule as it is written now."""
    stored = _stored(inventory.root)
    if not stored:
        return frozenset()
    return frozenset(entry for entry, key in keys(inventory).items() if key in stored)


def store(inventory: Inventory) -> None:
    """Keep the keys of every cluster entry of ``inventory``, which passed every check (a render succeeded with
    it); an unwritable folder only costs the next load its speed."""
    found = sorted(set(keys(inventory).values()))
    if not found:
        return
    path = memo_path(inventory.root)
    text = "\n".join([MEMO_FORMAT, *found])
    try:
        if path.read_text(encoding="ascii") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ignore = path.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# fleetgen's memo of the checked inventory entries: never commit it\n*\n",
                              encoding="utf-8")
        replace_file(path, text.encode("ascii"))
    except OSError:
        pass
