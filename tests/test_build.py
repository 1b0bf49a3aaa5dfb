"""Build: Flux Kustomization semantics with the real kustomize, HelmReleases with the real helm, the
step cache, and the reference fleet built end to end."""

from __future__ import annotations

import base64
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _buildkit import options, reference_build, tools
from conftest import REPO

from generator.build.fleet import build_fleet, parse_shard, select_clusters
from generator.build.helm import merge_maps, release_name, replace_path_value
from generator.build.kustomize import edit_kustomization
from generator.build.model import (
    REDACTED,
    BuildError,
    BuildOptions,
    ClusterBuild,
    golden_name,
    parse_golden_name,
    redact,
    split_documents,
)
from generator.build.tree import FleetTree
from generator.build.walker import Builder
from generator.errors import UsageError
from generator.yamlio import dump_documents, load_documents

URL = "ssh://git@example.com/acme/fleet.git"


def _yaml(*docs: dict[str, Any]) -> str:
    return dump_documents(docs)


def _ks(name: str, path: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {"interval": "10m", "path": path, "prune": True,
                 "sourceRef": {"kind": "GitRepository", "name": "flux-system"}, **spec},
    }


def _kustomization(*resources: str, **extra: Any) -> str:
    return _yaml({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                  "resources": list(resources), **extra})


MINI_CHART = {
    "charts/mini/Chart.yaml": "apiVersion: v2\nname: mini\nversion: 0.1.0\n",
    "charts/mini/values.yaml": "token: chart-default\n",
    "charts/mini/templates/cm.yaml": textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}
        data:
          namespace: {{ .Release.Namespace | quote }}
          kube: {{ .Capabilities.KubeVersion.Version | quote }}
          flux: {{ .Capabilities.APIVersions.Has "helm.toolkit.fluxcd.io/v2" | quote }}
          issuer: {{ .Capabilities.APIVersions.Has "cert-manager.io/v1/ClusterIssuer" | quote }}
          values: {{ omit .Values "token" | toJson | quote }}
        """),
    "charts/mini/templates/secret.yaml": textwrap.dedent("""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ .Release.Name }}-token
        stringData:
          token: {{ .Values.token | quote }}
        """),
    "charts/mini/templates/role.yaml": textwrap.dedent("""\
        apiVersion: rbac.authorization.k8s.io/v1
        kind: ClusterRole
        metadata:
          name: {{ .Release.Name }}-reader
        rules: []
        """),
}


def _fleet() -> dict[str, str]:
    """A small fleet repo exercising every Kustomization field fleetgen implements."""
    instance = {
        "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
        "metadata": {"name": "flux", "namespace": "flux-system"},
        "spec": {"distribution": {"version": "2.9.4", "registry": "ghcr.io/fluxcd"},
                 "sync": {"kind": "GitRepository", "url": URL, "ref": "refs/heads/main", "path": "clusters/c1"}},
    }
    apps = _ks(
        "apps", "./apps", dependsOn=[{"name": "config"}], targetNamespace="team-a", namePrefix="p-", nameSuffix="-s",
        images=[{"name": "nginx", "newTag": "1.27.0"}],
        patches=[{"target": {"kind": "Deployment", "name": "web"},
                  "patch": "- op: replace\n  path: /spec/replicas\n  value: 3\n"}],
        components=["../components/extra", "../components/absent"], ignoreMissingComponents=True,
        commonMetadata={"labels": {"owner": "team-a"}, "annotations": {"note": "common"}},
        postBuild={"substitute": {"greeting": "hello"}, "substituteFrom": [{"kind": "ConfigMap", "name": "vars"},
                                                                            {"kind": "Secret", "name": "nope",
                                                                             "optional": True}]},
    )
    releases = _ks("releases", "./releases", targetNamespace="team-b", dependsOn=[{"name": "apps"}])
    config = _ks("config", "./config")
    files = {
        "clusters/c1/kustomization.yaml": _kustomization("flux-system.yaml", "apps.yaml", "config.yaml",
                                                         "releases.yaml"),
        "clusters/c1/flux-system.yaml": _yaml(instance),
        "clusters/c1/apps.yaml": _yaml(apps),
        "clusters/c1/config.yaml": _yaml(config),
        "clusters/c1/releases.yaml": _yaml(releases),
        # no kustomization file: kustomize-controller generates one listing every manifest
        "config/vars.yaml": _yaml({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "vars", "namespace": "flux-system"},
                                   "data": {"region": "eu-west-1"}}),
        "config/nested/issuer.yaml": _yaml({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                                            "metadata": {"name": "letsencrypt"}, "spec": {"selfSigned": {}}}),
        "config/README.md": "not a manifest\n",
        "apps/kustomization.yaml": _kustomization("deploy.yaml", "cm.yaml"),
        "apps/deploy.yaml": _yaml({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25.0",
                                                           "envFrom": [{"configMapRef": {"name": "settings"}}]}]}}},
        }),
        "apps/cm.yaml": _yaml(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
             "data": {"greeting": "${greeting}", "region": "${region}", "escaped": "$${greeting}",
                      "fallback": "${missing:=default-value}"}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "raw", "annotations": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}},
             "data": {"greeting": "${greeting}"}},
        ),
        "components/extra/kustomization.yaml": _yaml({
            "apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
            "labels": [{"pairs": {"component": "extra"}}],
        }),
        "releases/kustomization.yaml": _kustomization("values.yaml", "releases.yaml"),
        "releases/values.yaml": _yaml(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mini-values"},
             "data": {"values.yaml": "a: 1\nb:\n  c: 2\n  keep: true\n", "other": "x: 9\n"}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mini-secret"},
             "data": {"replicas": base64.b64encode(b"5").decode()}},
        ),
        "releases/releases.yaml": _yaml(
            {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
             "metadata": {"name": "mini"},
             "spec": {"interval": "10m", "targetNamespace": "apps",
                      "chart": {"spec": {"chart": "./charts/mini", "sourceRef": {
                          "kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"}}},
                      "valuesFrom": [{"kind": "ConfigMap", "name": "mini-values"},
                                     {"kind": "ConfigMap", "name": "mini-values", "valuesKey": "other"},
                                     {"kind": "Secret", "name": "mini-secret", "valuesKey": "replicas",
                                      "targetPath": "b.replicas"},
                                     {"kind": "ConfigMap", "name": "absent", "optional": True}],
                      "values": {"b": {"c": 3}, "token": "s3cret"},
                      "commonMetadata": {"labels": {"tier": "backend"}}}},
            {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
             "metadata": {"name": "upstream"}, "spec": {"url": "https://charts.example.com"}},
            {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
             "metadata": {"name": "upstream"},
             "spec": {"interval": "10m", "releaseName": "up",
                      "chart": {"spec": {"chart": "mini", "version": "0.1.0",
                                         "sourceRef": {"kind": "HelmRepository", "name": "upstream"}}},
                      "values": {"token": "t"}}},
        ),
    }
    files.update(MINI_CHART)
    return files


def _build(files: dict[str, str], charts: Path | None = None, kube: str = "1.33") -> ClusterBuild:
    builder = Builder(files, git_path="", git_url=URL, tools=tools(),
                      options=BuildOptions(use_cache=False, progress=False, charts_dir=charts), cache_dir=None)
    try:
        return builder.build_cluster("c1", kube)
    finally:
        builder.close()


def _obj(build: ClusterBuild, rel: str) -> dict[str, Any]:
    assert rel in build.resources, f"{rel} not in {sorted(build.resources)}"
    docs = load_documents(build.resources[rel].text)
    assert len(docs) == 1
    obj: dict[str, Any] = docs[0]
    return obj


@pytest.fixture(scope="module")
def small() -> ClusterBuild:
    return _build(_fleet())


# --- Flux Kustomization spec handling (real kustomize) ---------------------------------------------------


def test_walk_follows_the_flux_graph_from_the_flux_instance(small: ClusterBuild) -> None:
    assert small.kustomizations == ["flux-system", "config", "apps", "releases"]  # dependsOn order
    assert "flux-system/fluxinstance.flux-system.flux.yaml" in small.resources
    assert "flux-system/kustomization.flux-system.apps.yaml" in small.resources
    # the one upstream chart is not locked (no fleetgen.lock): kept, and named
    assert small.warnings == [
        "HelmRelease team-b/upstream: chart mini 0.1.0 (HelmRepository https://charts.example.com) is not in "
        "fleetgen.lock: kept as the resolved HelmRelease, not templated (run `fleetgen lock` to fetch and pin it)"]


def test_target_namespace_prefix_suffix_images_patches_components(small: ClusterBuild) -> None:
    deploy = _obj(small, "apps/deployment.team-a.p-web-s.yaml")
    assert deploy["metadata"]["namespace"] == "team-a"
    assert deploy["spec"]["replicas"] == 3  # spec.patches
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.27.0"  # spec.images
    assert container["envFrom"][0]["configMapRef"]["name"] == "p-settings-s"  # prefix/suffix follow references
    labels = deploy["metadata"]["labels"]
    assert labels["component"] == "extra"  # spec.components (the missing one ignored)
    assert labels["owner"] == "team-a"  # commonMetadata
    assert deploy["metadata"]["annotations"] == {"note": "common"}
    assert labels["kustomize.toolkit.fluxcd.io/name"] == "apps"
    assert labels["kustomize.toolkit.fluxcd.io/namespace"] == "flux-system"


def test_post_build_substitution_and_the_disabled_annotation(small: ClusterBuild) -> None:
    settings = _obj(small, "apps/configmap.team-a.p-settings-s.yaml")
    assert settings["data"] == {"escaped": "${greeting}", "fallback": "default-value", "greeting": "hello",
                                "region": "eu-west-1"}  # region from substituteFrom ConfigMap of another build
    raw = _obj(small, "apps/configmap.team-a.p-raw-s.yaml")
    assert raw["data"] == {"greeting": "${greeting}"}


def test_generated_kustomization_lists_every_manifest(small: ClusterBuild) -> None:
    assert _obj(small, "config/configmap.flux-system.vars.yaml")["data"] == {"region": "eu-west-1"}
    assert "config/clusterissuer._cluster.letsencrypt.yaml" in small.resources


def test_missing_component_fails_unless_ignored() -> None:
    files = _fleet()
    files["clusters/c1/apps.yaml"] = files["clusters/c1/apps.yaml"].replace("ignoreMissingComponents: true",
                                                                            "ignoreMissingComponents: false")
    with pytest.raises(BuildError, match="Kustomization flux-system/apps"):
        _build(files)


def test_path_outside_the_fleet_and_missing_dependency_are_errors() -> None:
    files = _fleet()
    files["clusters/c1/config.yaml"] = _yaml(_ks("config", "./nowhere"))
    with pytest.raises(BuildError, match=r"path '\./nowhere' does not exist"):
        _build(files)
    files = _fleet()
    files["clusters/c1/config.yaml"] = _yaml(_ks("other", "./config"))
    with pytest.raises(BuildError, match="depends on flux-system/config, which no build defines"):
        _build(files)


def test_a_flux_envsubst_panic_fails_the_build_naming_the_variable_and_the_file() -> None:
    files = _fleet()
    path = next(p for p, text in files.items() if "${missing:=default-value}" in text)
    files[path] = files[path].replace("${missing:=default-value}", "${greeting:1:-2}")
    # fluxcd/pkg envsubst v1.7.0 toSubstr slices s[1:-1] and panics; kustomize-controller's reconcile fails
    expected = (
        rf"Kustomization flux-system/apps: ConfigMap p-settings-s \(in {path}\): .*panic: runtime error: "
        r"slice bounds out of range \[:-1\] in \$\{greeting:1:-2\} \(variable 'greeting'"
    )
    with pytest.raises(BuildError, match=expected):
        _build(files)


def test_required_substitute_from_must_exist() -> None:
    files = _fleet()
    files["config/vars.yaml"] = files["config/vars.yaml"].replace("name: vars", "name: other")
    with pytest.raises(BuildError, match="vars"):
        _build(files)


# --- HelmReleases (real helm) ---------------------------------------------------------------------------


def test_in_repo_chart_is_templated_with_flux_semantics(small: ClusterBuild) -> None:
    group = "releases/helmrelease.team-b.mini"
    cm = _obj(small, f"{group}/configmap.apps.apps-mini.yaml")  # [<targetNamespace>-]<name>, in targetNamespace
    assert cm["data"]["namespace"] == "apps"
    assert cm["data"]["kube"] == "v1.33.0"
    assert cm["data"]["flux"] == "true"  # --api-versions: Flux APIs of the FluxInstance
    assert cm["data"]["issuer"] == "true"  # --api-versions: kinds the cluster's builds use
    # valuesFrom in order (later wins), targetPath typed like --set, inline values on top
    assert json.loads(cm["data"]["values"]) == {"a": 1, "b": {"c": 3, "keep": True, "replicas": 5}, "x": 9}
    labels = cm["metadata"]["labels"]
    assert labels["helm.toolkit.fluxcd.io/name"] == "mini"
    assert labels["helm.toolkit.fluxcd.io/namespace"] == "team-b"
    assert labels["tier"] == "backend"
    secret = _obj(small, f"{group}/secret.apps.apps-mini-token.yaml")
    assert secret["stringData"] == {"token": REDACTED}
    assert "s3cret" not in small.resources[f"{group}/secret.apps.apps-mini-token.yaml"].text
    assert f"{group}/clusterrole._cluster.apps-mini-reader.yaml" in small.resources
    # the HelmRelease itself is applied by its Kustomization, and kept
    assert "releases/helmrelease.team-b.mini.yaml" in small.resources


def test_upstream_chart_is_kept_unless_charts_dir_has_it(small: ClusterBuild, tmp_path: Path) -> None:
    assert "releases/helmrelease.team-b.upstream.yaml" in small.resources
    assert not any(rel.startswith("releases/helmrelease.team-b.upstream/") for rel in small.resources)
    charts = tmp_path / "charts"
    for rel, text in MINI_CHART.items():
        target = charts / rel.replace("charts/mini/", "mini-0.1.0/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    built = _build(_fleet(), charts=charts)
    cm = _obj(built, "releases/helmrelease.team-b.upstream/configmap.team-b.up.yaml")
    assert cm["data"]["namespace"] == "team-b"


def test_release_names_follow_helm_controller() -> None:
    hr = {"metadata": {"name": "web", "namespace": "apps"}, "spec": {}}
    assert release_name(hr) == "web"
    assert release_name({**hr, "spec": {"targetNamespace": "prod"}}) == "prod-web"
    assert release_name({**hr, "spec": {"targetNamespace": "prod", "releaseName": "x"}}) == "x"
    long = release_name({"metadata": {"name": "a" * 30}, "spec": {"targetNamespace": "b" * 30}})
    assert len(long) == 53 and long.startswith("b" * 30 + "-" + "a" * 9 + "-")


def test_values_merge_and_target_paths() -> None:
    assert merge_maps({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 3}, "d": {"e": 1}}) == {
        "a": {"b": 3, "c": 2}, "d": {"e": 1}}
    values: dict[str, Any] = {"a": {"x": 1}}
    replace_path_value(values, "a.b", "true")
    replace_path_value(values, "a.n", "007")
    replace_path_value(values, "a.q", '"42"')
    replace_path_value(values, "list[1].name", "two")
    replace_path_value(values, r"dotted\.key", "9")
    assert values == {"a": {"x": 1, "b": True, "n": "007", "q": "42"}, "list": [None, {"name": "two"}],
                      "dotted.key": 9}


# --- pure helpers -----------------------------------------------------------------------------------------


def test_edit_kustomization_merges_like_kustomize_controller() -> None:
    original = {"resources": ["a.yaml"], "images": [{"name": "nginx", "newTag": "1"}], "patches": [{"patch": "p0"}]}
    edited = edit_kustomization(original, {
        "targetNamespace": "ns", "namePrefix": "x-",
        "images": [{"name": "nginx", "newName": "ghcr.io/nginx"}, {"name": "redis", "digest": "sha256:" + "0" * 64}],
        "patches": [{"patch": "p1", "target": {"kind": "Deployment", "name": ""}}],
        "components": ["../c"],
    })
    assert edited["namespace"] == "ns" and edited["namePrefix"] == "x-"
    assert edited["images"] == [{"name": "nginx", "newName": "ghcr.io/nginx"},
                                {"name": "redis", "digest": "sha256:" + "0" * 64}]  # same name: replaced whole
    assert edited["patches"] == [{"patch": "p0"}, {"patch": "p1", "target": {"kind": "Deployment"}}]
    assert edited["components"] == ["../c"]
    assert original["images"] == [{"name": "nginx", "newTag": "1"}]  # input untouched
    assert edit_kustomization({"components": ["c"]}, {})["buildMetadata"] == ["originAnnotations"]
    assert edit_kustomization(None, {}, generated_resources=["./a.yaml"])["resources"] == ["./a.yaml"]
    with pytest.raises(BuildError, match="must be local and relative"):
        edit_kustomization(original, {"components": ["https://github.com/x/y"]})


def test_redaction_and_golden_names() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"a": "c2VjcmV0"}, "stringData": {"b": "x"}}
    assert redact(secret)["data"] == {"a": REDACTED} and redact(secret)["stringData"] == {"b": REDACTED}
    assert secret["data"] == {"a": "c2VjcmV0"}
    assert golden_name("HelmRelease", "apps", "web.v1") == "helmrelease.apps.web.v1.yaml"
    assert parse_golden_name("helmrelease.apps.web.v1.yaml") == ("helmrelease", "apps", "web.v1")
    assert parse_golden_name(golden_name("Namespace", "", "apps")) == ("namespace", "", "apps")


def test_split_documents_and_shards() -> None:
    assert split_documents("---\na: 1\n---\n# only a comment\n---\nb: |\n  ---x\n") == [
        "\na: 1\n", "\n# only a comment\n", "\nb: |\n  ---x\n"]
    names = ["a", "b", "c", "d", "e"]
    assert select_clusters(names, [], parse_shard("2/2")) == ["b", "d"]
    assert select_clusters(names, ["e", "a"], None) == ["a", "e"]
    with pytest.raises(UsageError):
        select_clusters(names, ["zz"], None)
    with pytest.raises(UsageError):
        parse_shard("3/2")


def test_input_closure_follows_references() -> None:
    tree = FleetTree({
        "overlay/kustomization.yaml": (
            "resources:\n  - ../base\n  - 'extra.yaml'\npatches:\n  - path: ../patches/p.yaml\n"),
        "overlay/extra.yaml": "x",
        "base/kustomization.yaml": "resources: [deploy.yaml]\n",
        "base/deploy.yaml": "y",
        "patches/p.yaml": "z",
        "unrelated/file.yaml": "w",
    })
    assert tree.closure("overlay") == {"overlay/kustomization.yaml", "overlay/extra.yaml", "base/kustomization.yaml",
                                       "base/deploy.yaml", "patches/p.yaml"}
    before = tree.closure_hash("overlay")
    changed = FleetTree({**tree.files, "base/deploy.yaml": "y2"})
    assert changed.closure_hash("overlay") != before
    assert FleetTree({**tree.files, "unrelated/file.yaml": "w2"}).closure_hash("overlay") == before


# --- the reference fleet ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Iterator[Any]:
    yield reference_build()


def test_every_cluster_of_the_reference_fleet_builds(reference: Any) -> None:
    from generator.render.pipeline import plan

    names = [c.name for c in plan(REPO).fleet.clusters]
    assert list(reference.clusters) == names
    for name, cluster in reference.clusters.items():
        assert "flux-system/fluxinstance.flux-system.flux.yaml" in cluster.resources, name
        kinds = {r.kind for r in cluster.resources.values()}
        assert {"Kustomization", "HelmRelease", "Namespace"} <= kinds, name
        # only the upstream charts (no fleetgen.lock here) and the hub's remote installs are not templated
        assert all("is not in fleetgen.lock" in w or "(spec.kubeConfig)" in w for w in cluster.warnings), name
    workloads = [c for c in reference.clusters.values() if any("/helmrelease." in p and p.count("/") == 2
                                                               for p in c.resources)]
    assert workloads, "no in-repo HelmRelease was templated"
    for cluster in workloads:
        assert any(r.kind == "Deployment" for r in cluster.resources.values()), cluster.name


def test_reference_build_is_deterministic_and_cached(reference: Any) -> None:
    again = build_fleet(REPO, options(), tools=tools())
    assert again.files() == reference.files()
    assert again.stats.kustomize_runs == 0 and again.stats.helm_runs == 0  # every step from the cache
    one = build_fleet(REPO, options(clusters=("prod-us-east-1",), use_cache=False, jobs=1), tools=tools())
    assert one.files() == {k: v for k, v in reference.files().items() if k.startswith("prod-us-east-1/")}


def test_bench_fleet_is_a_valid_inventory(tmp_path: Path) -> None:
    from generator.bench import edit_one_cluster, make_fleet
    from generator.render.pipeline import plan

    names = make_fleet(REPO, tmp_path / "bench", 12, seed=7)
    assert len(names) == 12 and len(set(names)) == 12
    rendered = plan(tmp_path / "bench")
    assert sorted(c.name for c in rendered.fleet.clusters) == sorted(names)
    edit_one_cluster(tmp_path / "bench", names[5])
    edited = plan(tmp_path / "bench")
    changed = {p for p in set(rendered.files) | set(edited.files) if rendered.files.get(p) != edited.files.get(p)}
    assert changed and all(names[5] in p for p in changed - {"FLEET.md"})
    # the overview lists every cluster: only the edited cluster's lines change (file:line citations below the
    # edit move with the lines the edit added)
    cited = re.compile(r"(\.yaml):\d+")
    before, after = (
        {cited.sub(r"\1:N", line) for line in r.files["FLEET.md"].splitlines()} for r in (rendered, edited)
    )
    assert before ^ after and all(names[5] in line for line in before ^ after)


def test_skipping_substitution_is_only_a_shortcut(reference: Any) -> None:
    """Objects fleetgen does not send through substitution come out of Flux's round trip unchanged."""
    from generator.build.model import may_change
    from generator.build.substitute import substitute_object

    variables = {"cluster_name": "x", "unused": "y"}
    checked = 0
    for cluster in list(reference.clusters.values())[:3]:
        for _, obj in cluster.objects():
            if not may_change(obj):
                assert substitute_object(obj, variables) == obj, obj
                checked += 1
    assert checked > 50
    assert may_change({"spec": {"replicas": 1.0}}) and may_change({"a": "${x}"})
    assert not may_change({"spec": {"replicas": 1, "ratio": 0.5, "on": True}})


def test_parse_stream_keeps_timestamps_as_text() -> None:
    builder = Builder({}, git_url=URL, tools=tools(), options=BuildOptions(use_cache=False), cache_dir=None)
    docs = builder.parse_stream("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {day: 2024-01-02}\n",
                                "test")
    assert docs[0]["data"]["day"] == "2024-01-02"
