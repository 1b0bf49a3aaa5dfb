"""The identity of fleetgen's own code: what every cache of planned output is keyed by."""

from __future__ import annotations

import functools
import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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
