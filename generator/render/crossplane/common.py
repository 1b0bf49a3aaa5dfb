"""What the Crossplane planners share: the platform labels, the API mode (v2 or legacy claims) and the object type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

PROVIDER_LABEL = "platform.gitops.io/provider"
API_LABEL = "platform.gitops.io/api"


@dataclass(frozen=True)
class Mode:
    """What differs between the v2 namespaced API and the legacy cluster-scoped API with claims."""

    legacy: bool
    namespace: str
    group: str
    version: str

    @property
    def api_version(self) -> str:
        """apiVersion of the platform APIs."""
        return f"{self.group}/{self.version}"

    def xr_kind(self, kind: str) -> str:
        """The composite kind of an API (``X`` prefix for legacy XRs)."""
        return f"X{kind}" if self.legacy else kind
