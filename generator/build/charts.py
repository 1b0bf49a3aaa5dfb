"""Upstream Helm charts: fetched with the real ``helm pull`` as Flux resolves them, kept in a content-addressed
cache, pinned by ``fleetgen.lock``.

How a chart request is resolved follows source-controller v1.9.4 (the release Flux v2.9.4 ships,
fluxcd/flux2@v2.9.4 manifests/bases/source-controller):

* HelmRepository (https, or plain http on a loopback address): ``chart`` at ``version`` from the repository
  index; an exact version string is taken as is, else the highest version matching the Masterminds semver
  constraint, prereleases only when the constraint names one (internal/helm/repository/chart_repository.go
  ``getChartVersion``). ``helm pull --repo URL --version V`` applies the same rule with the same semver
  library (helm.sh/helm/v4 pkg/repo ``IndexFile.Get``).
* HelmRepository ``type: oci``: ``<url>/<chart>`` at the version: a valid semver is used as the tag directly,
  else the highest tag matching the range (oci_chart_repository.go ``getChartVersion``); ``helm pull
  oci://... --version V`` does the same.
* OCIRepository (a HelmRelease's ``chartRef``): ``spec.ref`` digest, else semver, else tag, else ``latest``
  (internal/controller/ocirepository_controller.go ``getArtifactRef``); the chart is the layer of media type
  ``application/vnd.cncf.helm.chart.content.v1.tar+gzip``, which is what ``helm pull oci://`` downloads.

A plain-http source is accepted only on a loopback address (for an OCI source only with ``spec.insecure``,
which Flux needs for a plain-http registry), and then pulled with ``--plain-http``.

Every archive is stored once, under its own sha256 (``<cache>/sha256/<2 hex>/<sha256>.tgz``), so caches can
be shared between checkouts and CI runs (``$FLEETGEN_CHART_CACHE``, default ``ROOT/.cache/fleetgen/charts``).
The build only templates charts the lock names: from the cache, or fetched at the locked reference and
compared with the lock (a re-published chart fails the build). ``--offline`` (or an unreachable source)
leaves a chart missing from the cache as the resolved HelmRelease, with a warning naming it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from generator.build.lock import ChartRequest, Lock, LockedChart
from generator.command import Command
from generator.errors import FleetgenError, ToolError
from generator.tools import Toolset
from generator.urls import is_loopback
from generator.yamlio import load_documents

#: Environment variable that moves the chart cache (e.g. to a folder CI restores between runs).
CHART_CACHE_ENV = "FLEETGEN_CHART_CACHE"
CHART_CACHE_SUBDIR = Path(".cache") / "fleetgen" / "charts"
_PULL_TIMEOUT = 600.0
_DIGEST_LINE = re.compile(r"^Digest:\s*(sha256:[0-9a-f]{64})\s*$", re.M)
#: helm's messages when a source cannot be reached at all (DNS, TCP, TLS, proxy): the build goes offline
#: for that source instead of failing.
_UNREACHABLE = re.compile(
    r"cannot be reached|dial tcp|connection refused|no such host|i/o timeout|network is unreachable|"
    r"TLS handshake timeout|connection reset|no route to host|Client\.Timeout|server misbehaving|"
    r"temporary failure in name resolution",
    re.I,
)


class ChartLockMismatch(FleetgenError):
    """A chart's bytes differ from the ones ``fleetgen.lock`` pinned: a re-published or tampered chart."""


class ChartFetchError(FleetgenError):
    """A chart source was reachable but the chart could not be fetched (no such chart or version, a failed
    provenance check, an unsupported source)."""


def chart_cache_dir(root: Path) -> Path:
    """The chart cache: ``$FLEETGEN_CHART_CACHE`` if set, else ``ROOT/.cache/fleetgen/charts``."""
    override = os.environ.get(CHART_CACHE_ENV)
    return Path(os.path.abspath(Path(override).expanduser() if override else root / CHART_CACHE_SUBDIR))


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def archive_chart(path: Path) -> tuple[str, str]:
    """(name, version) from a chart archive's ``<name>/Chart.yaml``."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            member = next((m for m in tar if m.isfile() and m.name.count("/") == 1
                           and m.name.endswith("/Chart.yaml")), None)
            handle = tar.extractfile(member) if member is not None else None
            if handle is None:
                raise ChartFetchError(f"{path.name}: not a chart archive (no <name>/Chart.yaml)")
            docs = load_documents(handle.read().decode("utf-8"))
    except (tarfile.TarError, OSError, UnicodeDecodeError) as exc:
        raise ChartFetchError(f"{path.name}: not a readable chart archive ({exc})") from exc
    meta = docs[0] if docs and isinstance(docs[0], Mapping) else {}
    return str(meta.get("name") or ""), str(meta.get("version") or "")


class ChartCache:
    """Chart archives stored under their sha256; safe for concurrent writers (atomic rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, sha256: str) -> Path:
        """Where the archive of a sha256 lives."""
        return self.directory / "sha256" / sha256[:2] / f"{sha256}.tgz"

    def find(self, sha256: str) -> Path | None:
        """The cached archive of a sha256, if present."""
        path = self.path(sha256)
        return path if path.is_file() else None

    def add(self, archive: Path) -> tuple[str, Path]:
        """Store an archive; returns (sha256, cached path)."""
        sha = file_sha256(archive)
        target = self.path(sha)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{sha[:8]}.", dir=target.parent)
            os.close(fd)
            try:
                shutil.copyfile(archive, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return sha, target


@dataclass(frozen=True)
class Fetched:
    """A chart archive pulled into the cache."""

    path: Path
    sha256: str
    version: str
    digest: str


@dataclass(frozen=True)
class Resolution:
    """A request's chart archive (path and sha256), or why it is not templated (warning)."""

    path: Path | None = None
    sha256: str = ""
    warning: str = ""


@dataclass
class ChartResolver:
    """Resolves the chart requests of one build (or of ``fleetgen lock``) to cached archives.

    ``relock`` fetches every request afresh at its inventory reference and records the result in
    ``locked`` (what ``fleetgen lock`` writes); otherwise only locked charts are templated.
    """

    tools: Toolset
    lock: Lock
    cache: ChartCache
    offline: bool = False
    relock: bool = False
    keyrings: Mapping[tuple[str, str], Path] = field(default_factory=dict)
    locked: dict[ChartRequest, LockedChart] = field(default_factory=dict)
    _results: dict[ChartRequest, Resolution] = field(default_factory=dict)
    _unreachable: dict[str, str] = field(default_factory=dict)
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _key_locks: dict[ChartRequest, threading.Lock] = field(default_factory=dict)
    _fingerprint: str | None = None

    def fingerprint(self) -> str:
        """Hash of what decides which charts a build can template: the lock, which locked archives the cache
        holds, offline or not (for the build's per-cluster cache key)."""
        with self._mutex:
            if self._fingerprint is None:
                parts = [f"offline={self.offline or self.relock}"]
                for request, locked in sorted(self.lock.charts.items()):
                    present = self.cache.find(locked.sha256) is not None
                    parts.append(f"{request}\0{locked}\0{present}")
                self._fingerprint = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
            return self._fingerprint

    def resolve(self, request: ChartRequest, *, plain_http: bool = False) -> Resolution:
        """The archive of a request (fetched at most once per run), or a warning saying why there is none."""
        with self._mutex:
            key_lock = self._key_locks.setdefault(request, threading.Lock())
        with key_lock:
            found = self._results.get(request)
            if found is None:
                found = self._results[request] = self._resolve(request, plain_http)
            return found

    def _resolve(self, request: ChartRequest, plain_http: bool) -> Resolution:
        if self.relock:
            try:
                fetched = self.fetch(request, plain_http)
            except _Unreachable as exc:
                raise ChartFetchError(f"{request.label}: cannot reach the source to lock it: {exc}") from exc
            with self._mutex:
                self.locked[request] = LockedChart(fetched.version, fetched.sha256, fetched.digest)
            return Resolution(fetched.path, fetched.sha256)
        kept = "kept as the resolved HelmRelease, not templated"
        locked = self.lock.get(request)
        if locked is None:
            return Resolution(warning=f"{request.label} is not in fleetgen.lock: {kept} "
                                      "(run `fleetgen lock` to fetch and pin it)")
        cached = self.cache.find(locked.sha256)
        if cached is not None:
            found = file_sha256(cached)
            if found != locked.sha256:
                raise ChartLockMismatch(self._mismatch(request, locked, found, f"cached archive {cached}"))
            return Resolution(cached, locked.sha256)
        where = f"{locked.version} (sha256 {locked.sha256[:12]}) is not in the chart cache {self.cache.directory}"
        if self.offline:
            return Resolution(warning=f"{request.label}: locked {where} (offline): {kept}")
        with self._mutex:
            down = self._unreachable.get(request.source)
        if down is None:
            try:
                fetched = self.fetch(request, plain_http)
            except _Unreachable as exc:
                down = str(exc)
                with self._mutex:
                    self._unreachable[request.source] = down
            else:
                if fetched.sha256 != locked.sha256 or (locked.digest and fetched.digest != locked.digest):
                    found = fetched.sha256 if fetched.sha256 != locked.sha256 else fetched.digest
                    raise ChartLockMismatch(self._mismatch(request, locked, found, f"{request.source} now serves"))
                return Resolution(fetched.path, fetched.sha256)
        return Resolution(warning=f"{request.label}: locked {where} and the source is unreachable, so the "
                                  f"build went offline for it ({down}): {kept}")

    @staticmethod
    def _mismatch(request: ChartRequest, locked: LockedChart, found: str, what: str) -> str:
        expected = locked.digest if found.startswith("sha256:") else locked.sha256
        return (f"{request.label}: {what} different bytes for version {locked.version} than fleetgen.lock pinned: "
                f"expected {expected}, found {found}. A chart re-published under the same version is a "
                "supply-chain alarm: check where it came from. If the change is deliberate, run `fleetgen lock` "
                "to re-lock it and review the golden diff (`fleetgen golden --update`).")

    def fetch(self, request: ChartRequest, plain_http: bool) -> Fetched:
        """``helm pull`` a request into the cache (raises _Unreachable when the source cannot be reached)."""
        scheme = urlsplit(request.source).scheme
        if scheme == "http" and not is_loopback(request.source):
            raise ChartFetchError(f"{request.label}: plain http is only accepted for loopback addresses; use https")
        if plain_http and not is_loopback(request.source):
            raise ChartFetchError(f"{request.label}: insecure (plain-http) registries are only accepted on "
                                  "loopback addresses")
        args = self._pull_args(request)
        if plain_http:
            args.append("--plain-http")
        keyring = self.keyrings.get((request.source, request.chart))
        if keyring is not None:
            args += ["--verify", "--keyring", str(keyring)]
        with tempfile.TemporaryDirectory(prefix="fleetgen-pull-") as tmp:
            helm = Command(self.tools.helm.argv,
                           env={**self.tools.helm.env, "HELM_CACHE_HOME": str(Path(tmp) / "helm-cache")})
            target = Path(tmp) / "chart"
            target.mkdir()
            try:
                out = helm.run("pull", *args, "--destination", str(target), timeout=_PULL_TIMEOUT)
            except ToolError as exc:
                if _UNREACHABLE.search(str(exc)):
                    raise _Unreachable(_last_line(str(exc))) from exc
                raise ChartFetchError(f"{request.label}: helm pull failed: {exc}") from exc
            archives = sorted(target.glob("*.tgz"))
            if len(archives) != 1:
                raise ChartFetchError(f"{request.label}: helm pull left {len(archives)} archives, expected one")
            name, version = archive_chart(archives[0])
            if request.kind == "HelmRepository" and name != request.chart:
                raise ChartFetchError(f"{request.label}: the archive holds chart {name!r}")
            sha, path = self.cache.add(archives[0])
        match = _DIGEST_LINE.search(out)
        return Fetched(path, sha, version, match[1] if match else "")

    @staticmethod
    def _pull_args(request: ChartRequest) -> list[str]:
        """helm pull arguments that ask for what Flux asks for."""
        if request.kind == "HelmRepository":
            if request.source.startswith("oci://"):
                reference = request.source.rstrip("/") + "/" + request.chart
                return [reference, *(("--version", request.ref) if request.ref else ())]
            return [request.chart, "--repo", request.source, *(("--version", request.ref) if request.ref else ())]
        how, _, value = request.ref.partition(":")
        if how == "digest":
            return [f"{request.source}@{value}"]
        if how in ("semver", "tag"):
            return [request.source, "--version", value]
        return [request.source, "--version", "latest"]


class _Unreachable(FleetgenError):
    """helm could not reach a chart source at all."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


# --- requests from Flux objects ---------------------------------------------------------------------------


def helm_repository_request(repository: Mapping[str, Any], chart: str, version: str) -> tuple[ChartRequest, bool]:
    """The request of ``spec.chart.spec`` against a HelmRepository object, and whether it is plain http."""
    spec = repository.get("spec") if isinstance(repository.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    url = str(spec.get("url") or "")
    oci = spec.get("type") == "oci" or url.startswith("oci://")
    plain = bool(oci and spec.get("insecure"))
    return ChartRequest("HelmRepository", url, chart, version or "*"), plain


def oci_repository_request(repository: Mapping[str, Any]) -> tuple[ChartRequest, bool] | str:
    """The request of a HelmRelease ``chartRef`` to an OCIRepository (and whether plain http), or why it
    cannot be fetched."""
    spec = repository.get("spec") if isinstance(repository.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    url = str(spec.get("url") or "").rstrip("/")
    ref = spec.get("ref") if isinstance(spec.get("ref"), Mapping) else {}
    assert isinstance(ref, Mapping)
    if ref.get("semverFilter"):
        return "spec.ref.semverFilter is not supported by the chart fetcher"
    if ref.get("digest"):
        how = f"digest:{ref['digest']}"
    elif ref.get("semver"):
        how = f"semver:{ref['semver']}"
    elif ref.get("tag"):
        how = f"tag:{ref['tag']}"
    else:
        how = "tag:latest"
    return ChartRequest("OCIRepository", url, url.rsplit("/", 1)[-1], how), bool(spec.get("insecure"))


def resolver_for(root: Path, tools: Toolset, fleet: Any, *, offline: bool = False, relock: bool = False,
                 cache_root: Path | None = None) -> ChartResolver:
    """The chart resolver of a fleet root: its lock, the chart cache (of ``cache_root``, default ``root``: a
    diff's base checkout uses the working tree's) and the inventory's keyrings."""
    from generator.build.lock import lock_path, read_lock

    lock = Lock({}) if relock else read_lock(lock_path(root))
    cache = ChartCache(chart_cache_dir(cache_root or root))
    return ChartResolver(tools, lock, cache, offline=offline, relock=relock,
                         keyrings=keyrings(root, fleet))


def offline_resolver(tools: Toolset) -> ChartResolver:
    """A resolver with no lock and no cache: every upstream chart is kept, with a warning."""
    return ChartResolver(tools, Lock({}), ChartCache(Path(os.devnull) / "no-chart-cache"), offline=True)


def keyrings(root: Path, fleet: Any) -> dict[tuple[str, str], Path]:
    """(source URL, chart) → keyring of every component whose chart asks for provenance verification (``fleet``:
    a resolved fleet, or the build context the last render recorded)."""
    from generator.render.record import BuildContext, chart_keyrings

    listed = fleet.keyrings if isinstance(fleet, BuildContext) else chart_keyrings(fleet)
    return {(source, chart): (root / keyring).resolve() for source, chart, keyring in listed}
