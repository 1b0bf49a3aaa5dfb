"""Upstream charts against real chart sources on 127.0.0.1: a Helm HTTP repository (``helm package`` + ``helm
repo index``) and an OCI registry (Debian's ``docker-registry``, ``helm push --plain-http``).

The fixture fleet is the reference inventory with every platform component's chart repository pointed at
those servers, which serve the small chart of ``tests/fixtures/charts/workload`` under each component's chart
name and version. Tested with the real helm and the real fleetgen commands: ``fleetgen lock`` (deterministic),
golden files holding every component's templated workloads, ``fleetgen validate`` over them, tamper detection
(same version, other bytes), ``--offline`` byte-identical rebuilds with the servers stopped, a chart cache
shared between checkouts, and the warnings that name every chart left untemplated.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from _buildkit import tools
from _chartservers import HttpChartRepository, OciRegistry, package_chart, registry_binary, signing_key, temp_dir
from conftest import REPO, copy_reference_fleet, tree_digest
from pydantic import ValidationError

from generator.build.charts import CHART_CACHE_ENV, ChartCache, ChartResolver, file_sha256
from generator.build.lock import ChartRequest, Lock, read_lock
from generator.cli import main
from generator.inventory.models import Chart
from generator.tools import TOOLS_DIR_ENV
from generator.yamlio import load_documents

pytestmark = pytest.mark.slow
#: The tools the session uses (``invoke tools`` installs them into REPO/.tools unless the variable says otherwise).
TOOLS_DIR = os.environ.get(TOOLS_DIR_ENV) or str(REPO / ".tools")

_CHART_LINE = re.compile(r'repository: "(?P<repo>(?:https|oci)://[^"]+)", name: (?P<name>[^,]+), '
                         r"version: (?P<version>[^}\s]+)")


@dataclass
class Sources:
    """The two servers, the archives they serve and the fleet pointed at them."""

    http: HttpChartRepository
    oci: OciRegistry
    archives: dict[str, Path]  # chart name -> archive served
    digests: dict[str, str]  # chart name -> OCI manifest digest (OCI charts only)
    charts: list[tuple[str, str, str]]  # (original repository, name, version) of every component
    work: Path

    def start(self) -> None:
        self.http.start()
        self.oci.start()

    def stop(self) -> None:
        self.http.stop()
        self.oci.stop()

    def fleet(self, dest: Path) -> Path:
        """A copy of the reference fleet whose component charts come from these servers."""
        root = copy_reference_fleet(dest)
        components = root / "inventory" / "components.yaml"

        def local(match: re.Match[str]) -> str:
            repo = self.oci.url if match["repo"].startswith("oci://") else self.http.url
            return f'repository: "{repo}", name: {match["name"]}, version: {match["version"]}'

        components.write_text(_CHART_LINE.sub(local, components.read_text()))
        return root


def missing(reason: str) -> None:
    """Skip for a tool that cannot be installed here; in CI (``CI`` set) fail instead."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sources() -> Iterator[Sources]:
    binary = registry_binary()
    if binary is None:
        missing("docker-registry is not installed and cannot be (needs root and apt-get: "
                "`apt-get install docker-registry`); .ci/run installs it")
    work = temp_dir("fleetgen-chart-sources-")
    charts = [(m["repo"], m["name"], m["version"])
              for m in _CHART_LINE.finditer((REPO / "inventory" / "components.yaml").read_text())]
    assert len(charts) >= 8 and any(r.startswith("oci://") for r, _, _ in charts)
    found = Sources(HttpChartRepository(work / "http", tools()), OciRegistry(binary, work / "oci", tools()), {}, {},
                    charts, work)
    found.start()
    try:
        for repo, name, version in charts:
            archive = package_chart(tools(), name, version, work / "packages", work=work)
            found.archives[name] = archive
            if repo.startswith("oci://"):
                found.digests[name] = found.oci.push(archive)
            else:
                found.http.publish(archive)
        found.stop()  # each test starts the servers it needs
        yield found
    finally:
        found.stop()
        shutil.rmtree(work, ignore_errors=True)


def fleetgen(*args: str) -> tuple[int, str, str]:
    """Run the fleetgen CLI in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def locked(sources: Sources, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The fixture fleet, locked and with golden files from the served charts: (root, chart cache)."""
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("locked")
    cache = base / "chart-cache"
    mp.setenv(CHART_CACHE_ENV, str(cache))
    mp.setenv("FLEETGEN_TOOLS_DIR", TOOLS_DIR)
    try:
        sources.start()
        root = sources.fleet(base / "fleet")
        code, _, err = fleetgen("lock", str(root))
        assert code == 0, err
        code, _out, err = fleetgen("golden", str(root), "--update", "--cache-dir", str(base / "steps"))
        assert code == 0, err
        assert "fleetgen.lock" not in err, err  # every chart was locked and templated
    finally:
        sources.stop()
    try:
        yield root, cache
    finally:
        mp.undo()


def running_components(root: Path) -> set[str]:
    """Components some cluster of the fleet at ``root`` runs (a component off everywhere is never templated)."""
    from generator.inventory.loader import load_inventory
    from generator.inventory.resolve import resolve

    fleet = resolve(load_inventory(root))
    return {component.name for cluster in fleet.clusters for component in cluster.components}


# --- lock ---------------------------------------------------------------------------------------------------


def test_lock_pins_every_chart_by_archive_sha256_and_oci_digest(sources: Sources, locked: tuple[Path, Path]) -> None:
    root, cache = locked
    lock = read_lock(root / "fleetgen.lock")
    by_chart = {request.chart: (request, entry) for request, entry in lock.charts.items()}
    components = load_documents((root / "inventory" / "components.yaml").read_text())[0]["components"]
    running = running_components(root)
    used = {c["chart"]["name"] for c in components if c["name"] in running}
    assert sorted(by_chart) == sorted(used) and used <= {name for _, name, _ in sources.charts}
    for repo, name, version in [chart for chart in sources.charts if chart[1] in used]:
        request, entry = by_chart[name]
        assert entry.version == version
        assert entry.sha256 == file_sha256(sources.archives[name])  # the exact bytes served
        assert ChartCache(cache).find(entry.sha256) is not None  # and they are in the cache under that hash
        if repo.startswith("oci://"):
            assert (request.kind, request.source, request.ref) == (
                "OCIRepository", f"{sources.oci.url}/{name}", f"tag:{version}")
            assert entry.digest == sources.digests[name]
        else:
            assert (request.kind, request.source, request.ref) == ("HelmRepository", sources.http.url, version)
            assert entry.digest == ""


def test_lock_is_deterministic(sources: Sources, locked: tuple[Path, Path]) -> None:
    root, _ = locked
    before = (root / "fleetgen.lock").read_bytes()
    sources.start()
    try:
        code, out, err = fleetgen("lock", str(root))
    finally:
        sources.stop()
    assert code == 0, err
    assert (root / "fleetgen.lock").read_bytes() == before
    assert out.strip().splitlines() == [f"locked {len(read_lock(root / 'fleetgen.lock').charts)} charts in "
                                        f"{root / 'fleetgen.lock'}"]  # nothing added, changed or removed


# --- golden files and validation over the templated charts ------------------------------------------------------


def test_golden_files_hold_every_components_templated_workloads(sources: Sources, locked: tuple[Path, Path]) -> None:
    root, _ = locked
    golden = root / "golden"
    deployments = sorted(p.relative_to(golden).as_posix() for p in golden.rglob("deployment.*.yaml")
                         if "/helmrelease." in p.relative_to(golden).as_posix())
    released = {path.split("/")[2].split(".")[2] for path in deployments}
    assert running_components(root) <= released  # every running component's chart was templated somewhere
    folder = golden / "prod-us-east-1" / "infra-controllers"
    release = load_documents((folder / "helmrelease.cert-manager.cert-manager.yaml").read_text())[0]
    cert = load_documents(
        (folder / "helmrelease.cert-manager.cert-manager" / "deployment.cert-manager.cert-manager.yaml").read_text())[0]
    assert cert["spec"]["replicas"] == release["spec"]["values"]["replicaCount"] == 2  # the values reached the chart
    assert cert["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "cert-manager"
    assert cert["metadata"]["annotations"]["fixture.fleetgen.dev/kube-version"].startswith("v1.")
    # the HelmRelease itself stays too, and the OCI source asks Flux for plain http (a loopback registry)
    oci = load_documents((golden / "dev-us-east-1/infra-controllers/"
                                   "ocirepository.envoy-gateway-system.envoy-gateway.yaml").read_text())[0]
    assert oci["spec"]["insecure"] is True and oci["spec"]["url"].startswith("oci://127.0.0.1:")


def test_validate_checks_the_chart_output(locked: tuple[Path, Path]) -> None:
    root, _ = locked
    code, out, err = fleetgen("validate", str(root), "--offline")
    assert code == 0, out + err
    assert re.search(r"^validate passed: 9 clusters, 0 denied, .* 0 schema violations, 0 possible secrets$", out, re.M)
    from _buildkit import reference_build

    checked = {m[1]: int(m[2]) for m in re.finditer(r"^cluster (\S+): (\d+) resources", out, re.M)}
    for name, cluster in reference_build().clusters.items():  # the charts' objects were checked too
        assert checked[name] > len(cluster.resources), name


def test_objects_in_exempt_namespaces_are_still_schema_checked(
        sources: Sources, locked: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, cache = locked
    monkeypatch.setenv(CHART_CACHE_ENV, str(cache))
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", TOOLS_DIR)
    copy = tmp_path / "fleet"
    shutil.copytree(root, copy)
    components = copy / "inventory" / "components.yaml"
    text = components.read_text()
    marker = "      multitenancy: {enabled: false}\n"
    assert marker in text  # flux-operator, installed into flux-system (exempt from the fleet's policies)
    components.write_text(text.replace(marker, marker + "      fixture: {invalidObject: true}\n", 1))
    code, out, err = fleetgen("validate", str(copy), "--offline", "--cluster", "management")
    assert code == 1, out + err
    assert "schema: ConfigMap/flux-system/flux-operator-invalid: dataa: unknown field" in out, out + err


# --- tamper detection and deliberate re-locking -------------------------------------------------------------


def _republish(sources: Sources, name: str, version: str) -> Path:
    """The same chart version, packaged again with one more object: other bytes behind the same version."""
    archive = package_chart(tools(), name, version, sources.work / "tampered", values={"extraObject": True},
                            work=sources.work)
    if any(n == name and r.startswith("oci://") for r, n, _ in sources.charts):
        sources.oci.push(archive)
    else:
        sources.http.publish(archive)
    return archive


@pytest.mark.parametrize("chart", ["cert-manager", "gateway-helm"])
def test_same_version_other_bytes_fails_the_build_until_relocked(
        sources: Sources, locked: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        chart: str) -> None:
    root, _ = locked
    copy = tmp_path / "fleet"
    shutil.copytree(root, copy)
    monkeypatch.setenv(CHART_CACHE_ENV, str(tmp_path / "cold-cache"))  # a CI runner with no cached chart
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", TOOLS_DIR)
    version = next(v for _, n, v in sources.charts if n == chart)
    entry = next(e for r, e in read_lock(copy / "fleetgen.lock").charts.items() if r.chart == chart)
    sources.start()
    try:
        tampered = _republish(sources, chart, version)
        code, out, err = fleetgen("golden", str(copy), "--no-cache", "--cluster", "dev-us-east-1")
        assert code == 1, out + err
        assert f"chart {chart} " in err and "fleetgen.lock" in err and "fleetgen lock" in err
        assert f"expected {entry.sha256}, found {file_sha256(tampered)}" in err, err
        # deliberate: re-lock, and the golden diff shows the new object
        code, out, err = fleetgen("lock", str(copy))
        assert code == 0, err
        assert re.search(rf"^changed: chart {chart} .*sha256:{entry.sha256} -> .*sha256:{file_sha256(tampered)}$",
                         out, re.M), out
        code, out, err = fleetgen("golden", str(copy), "--no-cache", "--cluster", "dev-us-east-1")
    finally:
        _republish_original(sources, chart)
        sources.stop()
    assert code == 1
    assert re.search(r"added\s+ConfigMap \S+-extra", out), out


def _republish_original(sources: Sources, name: str) -> None:
    archive = sources.archives[name]
    if name in sources.digests:
        sources.oci.push(archive)
    else:
        sources.http.publish(archive)


# --- offline: from the cache, byte-identical; never a silent gap --------------------------------------------------


def test_offline_rebuild_is_byte_identical_from_the_cache_with_servers_stopped(
        locked: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, cache = locked
    monkeypatch.setenv(CHART_CACHE_ENV, str(cache))
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", TOOLS_DIR)
    out_dir = tmp_path / "built"
    code, _out, err = fleetgen("build", str(root), "--offline", "--no-cache", "--out", str(out_dir))
    assert code == 0, err
    assert tree_digest(out_dir) == tree_digest(root / "golden")
    assert "fleetgen.lock" not in err and "chart cache" not in err, err


def test_a_second_checkout_shares_the_chart_cache(
        locked: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, cache = locked
    checkout = tmp_path / "checkout-2"
    shutil.copytree(root, checkout, ignore=shutil.ignore_patterns(".cache"))
    monkeypatch.setenv(CHART_CACHE_ENV, str(cache))
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", TOOLS_DIR)
    before = tree_digest(cache)
    code, out, err = fleetgen("golden", str(checkout), "--cache-dir", str(tmp_path / "steps"))  # servers stopped
    assert code == 0, out + err
    assert tree_digest(cache) == before  # nothing fetched, nothing written


def test_a_chart_missing_from_the_cache_is_kept_with_a_warning_naming_it(
        sources: Sources, locked: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, cache = locked
    partial = tmp_path / "partial-cache"
    shutil.copytree(cache, partial)
    kyverno = next(e for r, e in read_lock(root / "fleetgen.lock").charts.items() if r.chart == "kyverno")
    ChartCache(partial).path(kyverno.sha256).unlink()
    monkeypatch.setenv(CHART_CACHE_ENV, str(partial))
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", TOOLS_DIR)
    for flags in (["--offline"], []):  # --offline, and servers unreachable (automatic offline)
        out_dir = tmp_path / f"built{len(flags)}"
        code, _out, err = fleetgen("build", str(root), "--no-cache", "--out", str(out_dir), "--cluster",
                                  "dev-us-east-1", *flags)
        assert code == 0, err
        assert re.search(r"dev-us-east-1: HelmRelease kyverno/kyverno: chart kyverno \S+ \(HelmRepository "
                         r"http://127\.0\.0\.1:\d+\): locked \S+ \(sha256 [0-9a-f]{12}\) is not in the chart cache",
                         err), err
        assert ("(offline)" in err) if flags else ("unreachable" in err), err
        built = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.yaml")}
        assert "dev-us-east-1/infra-controllers/helmrelease.kyverno.kyverno.yaml" in built
        assert not any(p.startswith("dev-us-east-1/infra-controllers/helmrelease.kyverno.kyverno/") for p in built)
        assert any(p.startswith("dev-us-east-1/infra-controllers/helmrelease.cert-manager.cert-manager/")
                   for p in built)


def test_the_reference_fleet_has_no_lock_and_names_every_chart_it_keeps(tmp_path: Path) -> None:
    """The repository's own fleet (no network here): no lock, golden files hold HelmReleases, each named."""
    assert not (REPO / "fleetgen.lock").exists()
    from _buildkit import reference_build

    warnings = "\n".join(reference_build().warnings)
    components = load_documents((REPO / "inventory" / "components.yaml").read_text())[0]["components"]
    running = running_components(REPO)
    for name in sorted({c["chart"]["name"] for c in components if c["name"] in running and "chart" in c}):
        assert re.search(rf"chart {re.escape(name)} \S+ \(\w+ \S+\) is not in fleetgen\.lock", warnings), name


# --- resolution as source-controller does it ---------------------------------------------------------------------


def test_semver_ranges_resolve_to_the_highest_stable_match(sources: Sources, tmp_path: Path) -> None:
    work = tmp_path / "ranges"
    sources.start()
    for version in ("1.2.0", "1.2.3", "1.3.0-rc.1", "2.0.0"):
        archive = package_chart(tools(), "ranged", version, work / "packages", work=work)
        sources.http.publish(archive)
        sources.oci.push(archive)
    resolver = ChartResolver(tools(), Lock({}), ChartCache(tmp_path / "cache"), relock=True)
    try:
        cases = {
            ChartRequest("HelmRepository", sources.http.url, "ranged", "~1.2"): "1.2.3",
            ChartRequest("HelmRepository", sources.http.url, "ranged", "*"): "2.0.0",
            ChartRequest("HelmRepository", sources.http.url, "ranged", ">=1.2.1 <2.0.0"): "1.2.3",
            ChartRequest("HelmRepository", sources.http.url, "ranged", "1.2.0"): "1.2.0",
            ChartRequest("HelmRepository", sources.http.url, "ranged", ">=1.3.0-0 <2"): "1.3.0-rc.1",
            ChartRequest("HelmRepository", sources.oci.url, "ranged", "~1.2"): "1.2.3",
            ChartRequest("OCIRepository", f"{sources.oci.url}/ranged", "ranged", "semver:~1.2"): "1.2.3",
            ChartRequest("OCIRepository", f"{sources.oci.url}/ranged", "ranged", "tag:1.2.0"): "1.2.0",
        }
        for request, version in cases.items():
            plain = request.source.startswith("oci://")
            assert resolver.resolve(request, plain_http=plain).path is not None, request
            assert resolver.locked[request].version == version, request
        by_digest = resolver.locked[ChartRequest("OCIRepository", f"{sources.oci.url}/ranged", "ranged", "tag:1.2.0")]
        request = ChartRequest("OCIRepository", f"{sources.oci.url}/ranged", "ranged", f"digest:{by_digest.digest}")
        resolver.resolve(request, plain_http=True)
        assert resolver.locked[request] == by_digest
    finally:
        sources.stop()


def test_plain_http_sources_only_on_loopback_addresses() -> None:
    Chart(repository="http://127.0.0.1:8080", name="x", version="1.0.0")
    Chart(repository="http://localhost:8080/charts", name="x", version="1.0.0")
    with pytest.raises(ValidationError, match="only accepted for a loopback address"):
        Chart(repository="http://charts.example.com", name="x", version="1.0.0")
    resolver = ChartResolver(tools(), Lock({}), ChartCache(Path("/nonexistent")), relock=True)
    with pytest.raises(Exception, match="plain http is only accepted for loopback"):
        resolver.fetch(ChartRequest("HelmRepository", "http://charts.example.com", "x", "1.0.0"), False)
    with pytest.raises(Exception, match="only accepted on loopback"):
        resolver.fetch(ChartRequest("OCIRepository", "oci://registry.example.com/x", "x", "tag:1"), True)


# --- provenance ------------------------------------------------------------------------------------------------


def test_provenance_is_verified_where_the_inventory_asks(
        sources: Sources, locked: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart with ``keyring:`` is pulled with ``helm pull --verify``: its .prov must be signed by that keyring."""
    if shutil.which("gpg") is None:
        missing("gpg is not installed (`apt-get install gnupg`; .ci/run installs it)")
    root, _ = locked
    copy = tmp_path / "fleet"
    shutil.copytree(root, copy)
    monkeypatch.setenv(CHART_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", TOOLS_DIR)
    secret, public = signing_key(tmp_path / "publisher", "publisher")
    _, other = signing_key(tmp_path / "stranger", "stranger")
    (copy / "keys").mkdir()
    shutil.copyfile(public, copy / "keys" / "cert-manager.gpg")
    components = copy / "inventory" / "components.yaml"
    text = components.read_text()
    version = next(v for _, n, v in sources.charts if n == "cert-manager")
    line = f"name: cert-manager, version: {version}}}"
    assert line in text
    components.write_text(text.replace(line, line[:-1] + ", keyring: keys/cert-manager.gpg}"))
    signed = package_chart(tools(), "cert-manager", version, tmp_path / "signed", work=tmp_path,
                           sign=("publisher", secret))
    sources.start()
    try:
        code, _, err = fleetgen("lock", str(copy))  # no .prov published yet
        assert code == 1 and "chart cert-manager" in err and "helm pull failed" in err, err
        sources.http.publish(signed)
        code, _, err = fleetgen("lock", str(copy))
        assert code == 0, err
        shutil.copyfile(other, copy / "keys" / "cert-manager.gpg")  # a keyring that did not sign it
        code, _, err = fleetgen("lock", str(copy))
        assert code == 1 and "chart cert-manager" in err and "helm pull failed" in err, err
    finally:
        sources.http.publish(sources.archives["cert-manager"])
        sources.stop()
