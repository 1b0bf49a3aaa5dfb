"""The built-in schema catalogue: manifest and vendored files agree, every rendered kind has a schema, the
refresh task checks blob ids and is reproducible, our own FluxInstance schema matches upstream's CRD, and a
fresh clone with no ../shared validates the reference fleet."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _buildkit import reference_build, shared_cache_dir
from conftest import REPO, SHARED_CRDS, needs_shared_crds

from generator import cli
from generator.errors import FleetgenError
from generator.openapi import strict_schema_from_openapi
from generator.render.pipeline import plan
from generator.tools import TOOLS_DIR_ENV, tools_dir
from generator.verify import catalogue as cat
from generator.verify.schema import BUILTIN_CRDS, CrdCatalogue, read_crd_documents

#: Byte-for-byte upstream CRD files the catalogue vendors that ../shared/crds lacks (function-pythonic v0.1.4's
#: input definition, Envoy Gateway v1.9.0's SecurityPolicy, provider-vault
#: v4.0.1's Kubernetes auth kinds and ClusterProviderConfig; the refresh checks their git blob ids against the
#: manifest).
UPSTREAM_EXTRA = Path(__file__).parent / "fixtures" / "upstream-crds"

WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
  annotations: {controller-gen.kubebuilder.io/version: v0.19.0}
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      additionalPrinterColumns: [{jsonPath: .spec.size, name: Size, type: integer}]
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          description: A widget.
          type: object
          properties:
            spec:
              description: What the widget should be.
              type: object
              properties:
                description: {type: string, description: a field named description stays}
                size: {type: integer, description: How big.}
    - name: v1alpha1
      served: false
      storage: false
      schema:
        openAPIV3Schema: {type: object, description: old}
"""


def small_catalogue(tmp_path: Path, blob: str | None) -> tuple[Path, Path]:
    """An upstream folder with one CRD file and a catalogue folder whose manifest lists it."""
    upstream = tmp_path / "upstream"
    (upstream / "example").mkdir(parents=True)
    (upstream / "example" / "example.com_widgets.yaml").write_text(WIDGET_CRD)
    target = tmp_path / "catalogue"
    target.mkdir()
    manifest = {
        "sources": [
            {
                "dir": "example",
                "repository": "example/widget-operator",
                "tag": "v1.0.0",
                "commit": "0" * 40,
                "path": "config/crd/bases/",
                "licence": "Apache-2.0",
                "files": {"example.com_widgets.yaml": blob},
            }
        ]
    }
    (target / cat.MANIFEST).write_text(yaml.safe_dump(manifest))
    return upstream, target


def widget_blob() -> str:
    return cat.git_blob_id(WIDGET_CRD.encode())


# --- the shipped catalogue ---


def test_manifest_and_vendored_files_agree() -> None:
    assert cat.verify() == []
    manifest = cat.load_manifest()
    assert len(list(manifest.entries())) == len(list(BUILTIN_CRDS.rglob("*.gz")))
    assert all(source.licence == "Apache-2.0" for source in manifest.sources)
    assert not any("flux-operator" in source.repository for source in manifest.sources)  # AGPL-3.0
    for path in BUILTIN_CRDS.rglob("*.gz"):
        assert gzip.decompress(path.read_bytes()).startswith(b"{")
        assert path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0: reproducible bytes


def test_catalogue_size_stays_small() -> None:
    size = sum(p.stat().st_size for p in BUILTIN_CRDS.rglob("*") if p.is_file())
    assert size < 512 * 1024, f"the built-in catalogue is {size} bytes"


def test_every_rendered_kind_has_a_schema() -> None:
    rendered = plan(REPO)
    result = cat.coverage(rendered, reference_build())
    assert result.problems() == []
    assert [gap.kind for gap in result.gaps] == [
        "dbforpostgresql.azure.m.upbound.io/v1beta1 FlexibleServerActiveDirectoryAdministrator"
    ]
    kinds = set(result.kinds)
    assert {
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),  # rendered files
        ("apps/v1", "Deployment"),  # helm template of the in-repo chart, in the build
        ("ec2.aws.m.upbound.io/v1beta1", "VPC"),  # composed by a rendered Composition
        ("pythonic.fn.fortra.com/v1alpha1", "Composite"),  # a Composition's function input
        ("cache.azure.m.upbound.io/v1beta1", "RedisCache"),  # the code composes it; the reference fleet does not
        ("policies.kyverno.io/v1", "PolicyException"),  # a template; the reference fleet has no exception
        ("platform.gitops.io/v1alpha1", "KubernetesCluster"),  # the fleet's own XRD
        ("fluxcd.controlplane.io/v1", "FluxInstance"),  # fleetgen's own schema
    } <= kinds
    assert not any(api.startswith("kustomize.config.k8s.io/") for api, _ in kinds)


def test_a_kind_without_schema_fails_the_check_by_name(
    fleet_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    components = fleet_root / "inventory/components.yaml"
    text = components.read_text()
    anchor = "        kind: Certificate\n"
    assert anchor in text
    components.write_text(text.replace(
        "      - apiVersion: cert-manager.io/v1\n" + anchor,
        "      - apiVersion: example.com/v1\n        kind: Widget\n        metadata: {name: w}\n"
        "      - apiVersion: cert-manager.io/v1\n" + anchor, 1))
    code = cli.main(["schemas", str(fleet_root), "--no-build"])
    err = capsys.readouterr().err
    assert code == 1
    assert "example.com/v1 Widget: no schema (rendered at fleet/infrastructure/base/envoy-gateway" in err
    assert "catalogue.yaml" in err and "invoke schemas --from DIR" in err

    # a catalogue without cert-manager's files: ClusterIssuer (rendered per cluster) is named
    copy = tmp_path / "crds"
    shutil.copytree(BUILTIN_CRDS, copy)
    manifest = yaml.safe_load((copy / cat.MANIFEST).read_text())
    manifest["sources"] = [s for s in manifest["sources"] if s["dir"] != "cert-manager"]
    (copy / cat.MANIFEST).write_text(yaml.safe_dump(manifest))
    shutil.rmtree(copy / "cert-manager")
    assert any("cert-manager" in p for p in cat.verify(copy))  # SOURCES.tsv still lists it
    lines = (copy / cat.SOURCES).read_text().splitlines()
    (copy / cat.SOURCES).write_text("\n".join(line for line in lines if "cert-manager" not in line) + "\n")
    assert cat.verify(copy) == []
    code = cli.main(["schemas", str(REPO), "--catalogue", str(copy), "--no-build"])
    err = capsys.readouterr().err
    assert code == 1 and "cert-manager.io/v1 ClusterIssuer: no schema" in err


def test_a_listed_gap_with_a_schema_is_reported() -> None:
    manifest = cat.load_manifest()
    stale = manifest.model_copy(update={"gaps": [*manifest.gaps, cat.Gap(
        kind="helm.toolkit.fluxcd.io/v2 HelmRelease", reason="test")]})
    result = cat.coverage(plan(REPO), manifest=stale)
    assert result.problems() == [
        "helm.toolkit.fluxcd.io/v2 HelmRelease: listed under gaps: in catalogue.yaml but has a schema now; "
        "remove it there"
    ]


# --- the refresh task ---


def test_refresh_reduces_compresses_and_is_reproducible(tmp_path: Path) -> None:
    upstream, target = small_catalogue(tmp_path, widget_blob())
    report = cat.refresh(upstream, target)
    assert report.written == ["example/example.com_widgets.yaml.gz", "SOURCES.tsv"]
    data = (target / "example/example.com_widgets.yaml.gz").read_bytes()
    (crd,) = read_crd_documents(target / "example/example.com_widgets.yaml.gz")
    assert crd["metadata"] == {"name": "widgets.example.com"}
    assert crd["spec"]["versions"] == [
        {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "properties": {"spec": {"type": "object", "properties": {
                "description": {"type": "string"}, "size": {"type": "integer"}}}}}}},
        {"name": "v1alpha1", "served": False, "storage": False},
    ]
    assert (target / "SOURCES.tsv").read_text().splitlines()[1] == "\t".join([
        "example/example.com_widgets.yaml", "example/widget-operator", "v1.0.0", "0" * 40,
        "config/crd/bases/example.com_widgets.yaml", widget_blob(), "Apache-2.0", "example.com/v1 Widget"])
    assert cat.verify(target) == []
    assert cat.refresh(upstream, target).written == []  # same input, same bytes
    assert (target / "example/example.com_widgets.yaml.gz").read_bytes() == data
    assert CrdCatalogue.load(target).kinds() == {("example.com/v1", "Widget")}


def test_refresh_checks_blob_ids_and_writes_nothing_on_a_mismatch(tmp_path: Path) -> None:
    upstream, target = small_catalogue(tmp_path, "1" * 40)
    with pytest.raises(FleetgenError) as raised:
        cat.refresh(upstream, target)
    message = str(raised.value)
    assert f"example/example.com_widgets.yaml: git blob id {widget_blob()} differs from the manifest's {'1' * 40}" \
        in message
    assert "nothing was written" in message
    assert sorted(p.name for p in target.iterdir()) == [cat.MANIFEST]

    # no blob in the manifest: the upstream folder's SOURCES.tsv is checked instead
    upstream, target = small_catalogue(tmp_path / "second", None)
    row = ["example.com_widgets.yaml", "example/widget-operator", "v0.9.0", "0" * 40,
           "config/crd/bases/example.com_widgets.yaml", widget_blob()]
    (upstream / "example" / "SOURCES.tsv").write_text("\t".join(row) + "\n")
    with pytest.raises(FleetgenError, match=r"SOURCES.tsv says example/widget-operator@v0\.9\.0"):
        cat.refresh(upstream, target)
    row[2] = "v1.0.0"
    (upstream / "example" / "SOURCES.tsv").write_text("\t".join(row) + "\n")
    assert cat.refresh(upstream, target).vendored[0].blob == widget_blob()
    (upstream / "example" / "example.com_widgets.yaml").unlink()
    with pytest.raises(FleetgenError, match=r"example/example\.com_widgets\.yaml: not found in"):
        cat.refresh(upstream, target)


def test_refresh_removes_files_the_manifest_no_longer_lists(tmp_path: Path) -> None:
    upstream, target = small_catalogue(tmp_path, widget_blob())
    (target / "old").mkdir()
    (target / "old" / "gone.yaml.gz").write_bytes(b"")
    report = cat.refresh(upstream, target)
    assert report.removed == ["old/gone.yaml.gz"]
    assert not (target / "old").exists()


@needs_shared_crds
def test_refresh_from_upstream_reproduces_the_shipped_catalogue(tmp_path: Path) -> None:
    assert SHARED_CRDS is not None
    target = tmp_path / "crds"
    target.mkdir()
    shutil.copy(BUILTIN_CRDS / cat.MANIFEST, target / cat.MANIFEST)
    upstream = tmp_path / "upstream"
    shutil.copytree(SHARED_CRDS, upstream)
    shutil.copytree(UPSTREAM_EXTRA, upstream, dirs_exist_ok=True)
    cat.refresh(upstream, target)
    shipped = {p.relative_to(BUILTIN_CRDS).as_posix(): p.read_bytes() for p in BUILTIN_CRDS.rglob("*") if p.is_file()}
    fresh = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert fresh.keys() == shipped.keys()
    for rel, data in shipped.items():  # compare content: gzip bytes depend on the zlib build
        if rel.endswith(".gz"):
            assert gzip.decompress(fresh[rel]) == gzip.decompress(data), rel
        else:
            assert fresh[rel] == data, rel


def _without_descriptions(node: Any) -> Any:
    """A converted schema without ``description`` keywords (a *property* named description is kept)."""
    if isinstance(node, list):
        return [_without_descriptions(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _without_descriptions(sub) for name, sub in value.items()}
        elif key != "description":
            out[key] = _without_descriptions(value)
    return out


@needs_shared_crds
def test_reduced_crds_validate_exactly_like_upstream() -> None:
    assert SHARED_CRDS is not None
    builtin = CrdCatalogue.builtin()
    compared = 0
    for source, file in cat.load_manifest().entries():
        extra = UPSTREAM_EXTRA / source.dir / file
        for crd in read_crd_documents(extra if extra.is_file() else SHARED_CRDS / source.dir / file):
            for version in crd["spec"]["versions"]:
                if not version.get("served"):
                    continue
                api_version, kind = f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"]
                upstream = strict_schema_from_openapi(
                    version["schema"]["openAPIV3Schema"], api_version=api_version, kind=kind)
                assert builtin.schema_for(api_version, kind) == _without_descriptions(upstream), (api_version, kind)
                compared += 1
    assert compared == len(builtin.kinds())


# --- licences: our own FluxInstance schema against the AGPL upstream CRD ---

FLUX_OPERATOR_CRDS = [
    pytest.param(folder, id=folder) for folder in ("flux-operator", "flux-operator-latest")
]


def _schema_differences(ours: dict[str, Any], upstream: dict[str, Any], path: str) -> list[str]:
    """Where our schema allows what upstream's does not: unknown fields, other types, extra enum values,
    fields upstream requires that we do not, other patterns."""
    found = []
    if "type" in ours and "type" in upstream and ours["type"] != upstream["type"]:
        found.append(f"{path}: type {ours['type']} but upstream {upstream['type']}")
    if "enum" in ours and "enum" in upstream and set(ours["enum"]) - set(upstream["enum"]):
        found.append(f"{path}: enum values upstream lacks: {sorted(set(ours['enum']) - set(upstream['enum']))}")
    if "pattern" in ours and "pattern" in upstream and ours["pattern"] != upstream["pattern"]:
        found.append(f"{path}: pattern {ours['pattern']!r} but upstream {upstream['pattern']!r}")
    if path:
        found += [f"{path}.{key}: required upstream" for key in upstream.get("required", [])
                  if key not in ours.get("required", [])]
    for key, sub in (ours.get("properties") or {}).items():
        if not path and key in ("apiVersion", "kind", "metadata"):
            continue
        up = (upstream.get("properties") or {}).get(key)
        if up is None:
            found.append(f"{path}.{key}: not a field upstream")
        else:
            found += _schema_differences(sub, up, f"{path}.{key}")
    if isinstance(ours.get("items"), dict) and isinstance(upstream.get("items"), dict):
        found += _schema_differences(ours["items"], upstream["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("folder", FLUX_OPERATOR_CRDS)
def test_own_fluxinstance_schema_matches_the_upstream_crd(folder: str) -> None:
    path = SHARED_CRDS / folder / "fluxcd.controlplane.io_fluxinstances.yaml" if SHARED_CRDS else None
    if path is None or not path.is_file():
        pytest.skip(f"flux-operator is AGPL-3.0 and not vendored; no upstream copy at ../shared/crds/{folder}")
    ours = json.loads((REPO / "generator/data/schemas/fluxinstance.json").read_text())
    (crd,) = read_crd_documents(path)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1" and v["served"]]
    assert ours["properties"]["apiVersion"]["const"] == f"{crd['spec']['group']}/v1"
    assert _schema_differences(ours, version["schema"]["openAPIV3Schema"], "") == []
    rendered = [doc for p, text in plan(REPO).files.items() if p.endswith("flux-instance.yaml")
                for doc in yaml.safe_load_all(text)]
    assert rendered and all(set(doc["spec"]) <= set(ours["properties"]["spec"]["properties"]) for doc in rendered)


# --- a fresh clone: no ../shared, no $FLEETGEN_CRDS ---


@pytest.mark.slow
def test_a_fresh_clone_without_shared_crds_renders_and_validates(tmp_path: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    clone = tmp_path / "clone"
    for rel in filter(None, files.decode().split("\0")):
        if (REPO / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, clone / rel)
    assert not any((d.parent / "shared" / "crds").is_dir() for d in (clone, *clone.parents))
    env = {k: v for k, v in os.environ.items() if k != "FLEETGEN_CRDS"}
    env.update({"PYTHONPATH": str(clone), TOOLS_DIR_ENV: str(tools_dir(REPO))})

    def fleetgen(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "generator.cli", *argv], cwd=clone, env=env,
                              capture_output=True, text=True, check=False)

    where = subprocess.run([sys.executable, "-c", "import generator; print(generator.__file__)"], cwd=clone,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(clone)), where  # the clone's code and data, not this checkout's
    done = fleetgen("render", ".")
    assert done.returncode == 0, done.stderr
    done = fleetgen("validate", ".", "--cache-dir", str(shared_cache_dir()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validate passed: 9 clusters" in done.stdout and "0 schema violations" in done.stdout
    done = fleetgen("schemas", ".", "--no-build")
    assert done.returncode == 0, done.stderr
