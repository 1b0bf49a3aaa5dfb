"""``fleetgen validate`` and ``fleetgen policy test`` end to end: real kustomize and helm builds of each cluster,
the rendered Kyverno policies evaluated offline with CEL, strict schemas, and the secret scan."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from _buildkit import options, shared_cache_dir
from conftest import REPO

from generator import cli
from generator.tools import TOOLS_DIR_ENV, tools_dir
from generator.verify import evaluate
from generator.verify.validate import validate_fleet

FIXTURES = Path(__file__).parent / "fixtures" / "policies"


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the fleetgen command line (with ``validate`` and ``policy`` registered) and capture its output."""
    parser = cli.parser()
    monkeypatch.setattr(cli, "parser", lambda: parser)
    monkeypatch.delenv("FLEETGEN_CRDS", raising=False)  # the built-in catalogue only
    monkeypatch.setenv(TOOLS_DIR_ENV, str(tools_dir(REPO)))  # fleet copies have no .tools of their own
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def make_privileged(root: Path, app: str = "catalog") -> None:
    """A chart change that makes one app's container privileged."""
    template = root / "charts/service/templates/deployment.yaml"
    text = template.read_text()
    assert "privileged: false" in text
    template.write_text(text.replace("privileged: false", f'privileged: {{{{ eq .Release.Name "{app}" }}}}'))


def test_reference_fleet_passes_with_zero_violations() -> None:
    report = validate_fleet(REPO, options())
    assert not report.failed, evaluate.format_report(report)
    assert len(report.clusters) == 9
    for cluster in report.clusters:
        assert len(cluster.policies) == 11  # ten workload policies + restrict-flux-tenancy
        assert cluster.evaluation.findings == []
        assert cluster.schema == [] and cluster.secrets == []
        assert "ImageValidatingPolicy verify-image-signatures" in cluster.not_evaluated
    workloads = {c.name: c.evaluation.matched for c in report.clusters}
    assert workloads["management"] == 0  # the hub runs no apps; upstream charts stay HelmReleases
    # the four apps' Deployments (templated from the in-repo chart) and their four HelmReleases in team
    # namespaces, which restrict-flux-tenancy checks and admits
    assert workloads["prod-us-east-1"] == 8
    assert report.rendered_secrets == []


def test_privileged_app_fails_in_prod_and_only_warns_in_dev(
    fleet_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_privileged(fleet_root)
    cache = str(shared_cache_dir())
    code, out, _ = run(
        ["validate", str(fleet_root), "--cluster", "dev-us-east-1", "--cache-dir", cache], monkeypatch, capsys
    )
    assert code == 0, out
    assert (
        "warning: AUDIT  disallow-privileged-containers  Deployment catalog/catalog: "
        "privileged containers are not allowed: catalog"
    ) in out
    assert "validate passed: 1 clusters, 0 denied, 1 warnings" in out

    code, out, _ = run(
        [
            "validate",
            str(fleet_root),
            "--cluster",
            "prod-us-east-1",
            "--cluster",
            "dev-us-east-1",
            "--cache-dir",
            cache,
        ],
        monkeypatch,
        capsys,
    )
    assert code == 1, out
    prod = out.split("cluster prod-us-east-1:")[1]
    assert "\n  DENY   disallow-privileged-containers  Deployment catalog/catalog: " in prod
    assert "validate FAILED: 2 clusters, 1 denied, 1 warnings" in out


def test_an_exception_from_the_inventory_lets_the_app_through(
    fleet_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_privileged(fleet_root)
    expires = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    (fleet_root / "inventory/exceptions.yaml").write_text(
        "exceptions:\n"
        "  - name: catalog-gpu-driver\n"
        "    owner: storefront\n"
        "    reason: The catalog image-search driver needs device access until the GPU operator lands.\n"
        f"    expires: {expires}\n"
        "    policies: [disallow-privileged-containers]\n"
        "    namespaces: [catalog]\n"
        "    names: [catalog]\n"
    )
    code, out, _ = run(
        ["validate", str(fleet_root), "--cluster", "prod-us-east-1", "--cache-dir", str(shared_cache_dir())],
        monkeypatch,
        capsys,
    )
    assert code == 0, out
    assert "0 denied, 0 warnings" in out


def test_secrets_and_schema_violations_fail_validate(
    fleet_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "S3cr3tP4ssw0rdXyZ9!q"
    apps = fleet_root / "inventory/apps.yaml"
    apps.write_text(
        apps.read_text().replace("env: {LOG_LEVEL: info,", f'env: {{DB_PASSWORD: "{password}", LOG_LEVEL: info,')
    )
    components = fleet_root / "inventory/components.yaml"
    components.write_text(
        components.read_text().replace(
            "                mode: Terminate\n",
            "                mode: Terminate\n                bogusField: 1\n",
        )
    )
    code, out, _ = run(
        ["validate", str(fleet_root), "--cluster", "prod-us-east-1", "--cache-dir", str(shared_cache_dir())],
        monkeypatch,
        capsys,
    )
    assert code == 1, out
    assert password not in out
    assert "secret: fleet/apps/base/checkout/release.yaml HelmRelease/checkout spec.values.env.DB_PASSWORD" in out
    assert "literal value of 'DB_PASSWORD' (S3cr… 20 chars)" in out
    assert "Deployment/checkout spec.template.spec.containers[0].env[0][DB_PASSWORD]" in out
    assert "schema: Gateway/envoy-gateway-system/fleet: spec.listeners[1].tls.bogusField: unknown field" in out, out


def test_policy_test_denies_and_names_every_violated_policy(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [
        str(FIXTURES / "fail/disallow-privileged-containers/deployment.yaml"),
        str(FIXTURES / "fail/require-probes/statefulset.yaml"),
        str(FIXTURES / "pass/deployment.yaml"),
    ]
    cache = ["--cache-dir", str(shared_cache_dir())]
    code, out, err = run(
        ["policy", "test", str(REPO), "--cluster", "prod-us-east-1", *files, *cache], monkeypatch, capsys
    )
    assert code == 1
    assert "DENY   disallow-privileged-containers  Deployment storefront/web: privileged containers" in out
    assert "DENY   require-probes  StatefulSet storefront/web: containers without a readinessProbe: web" in out
    assert "DENIED by 2 policies: disallow-privileged-containers, require-probes" in err

    code, out, err = run(["policy", "test", "--cluster", "dev-us-east-1", *files, *cache], monkeypatch, capsys)
    assert code == 0  # dev audits: the same manifests only warn (ROOT defaults to the working directory: the repo)
    assert "warning: AUDIT  require-probes" in out
    assert "admitted" in err

    passing = [str(FIXTURES / "pass")]
    code, out, err = run(
        ["policy", "test", str(REPO), "--cluster", "prod-eastus", *passing, *cache], monkeypatch, capsys
    )
    assert (code, out) == (0, "")
    count = len(list((FIXTURES / "pass").glob("*.yaml")))
    assert f"{count} objects checked against 11 policies of cluster prod-eastus: admitted" in err


def test_policy_test_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cache = ["--cache-dir", str(shared_cache_dir())]
    fixture = str(FIXTURES / "pass/deployment.yaml")
    code, _, err = run(["policy", "test", str(REPO), "--cluster", "prod-nowhere", fixture, *cache], monkeypatch, capsys)
    assert code == 2 and "unknown cluster 'prod-nowhere'" in err
    (tmp_path / "bad.yaml").write_text("kind: [\n")
    code, _, err = run(
        ["policy", "test", str(REPO), "--cluster", "prod-eastus", str(tmp_path / "bad.yaml"), *cache],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "bad.yaml:2:1: invalid YAML" in err


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
