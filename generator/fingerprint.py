"""The identity of fleetgen's own code and of plain data: what every cache of planned output is keyed by."""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

#: The libraries whose code shapes planned text (templates compiled and run, YAML read and written, models).
SHAPING_DISTRIBUTIONS = ("jinja2", "markupsafe", "pyyaml", "pydantic", "pydantic-core", "ruamel.yaml")


@functools.cache
def package_fingerprint() -> str:
    """Hash of the generator package's modules, templates and data files (not the vendored schemas, which
    planning does not read) and of the versions of the libraries that shape the rendered text."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    files = [
        *package.rglob("*.py"),
        *(p for p in (package / "templates").rglob("*") if p.is_file()),
        *(p for p in (package / "data").glob("*.yaml")),
    ]
    for path in sorted(p for p in files if "__pycache__" not in p.parts):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name in SHAPING_DISTRIBUTIONS:
        try:
            digest.update(f"{name}={version(name)}\0".encode())
        except PackageNotFoundError:
            digest.update(f"{name}=\0".encode())
    return digest.hexdigest()


def plain_bytes(value: Any) -> bytes | None:
    """Bytes equal only for equal plain data (pickle tells str from int keys and keeps insertion order), and the
    same for equal data however its objects are shared (no memo: an entry read from the load cache shares its keys'
    strings, one parsed afresh does not; a value sent back by a worker shares nothing); None when pickle cannot
    write it (or it holds a cycle)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True  # no memo: each occurrence written out in full
    try:
        pickler.dump(value)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
        return None
    return buffer.getvalue()
