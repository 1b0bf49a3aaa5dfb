"""The packaged facts of ``generator/data/crossplane.yaml`` (pins, sizes, limits)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any


@cache
def crossplane_data() -> dict[str, Any]:
    """Package pins, provider groups, size tables and limits the infrastructure repo is built from."""
    from generator.yamlio import load_documents

    text = resources.files("generator").joinpath("data/crossplane.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = load_documents(text)[0]
    return data
