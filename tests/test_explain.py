"""`fleetgen explain`: every resolved value with the file:line of the layer that set it."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from generator.cli import main


def _explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["explain", *args, "--root", str(REPO)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _line(path: str, needle: str) -> int:
    return next(i + 1 for i, text in enumerate((REPO / path).read_text().splitlines()) if needle in text)


def test_each_layer_is_named_with_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(capsys, "prod-us-east-1")
    assert code == 0
    rows = {m[1]: (m[2], m[3]) for m in re.finditer(r"^(\S+)\s+(.+?)  # (.+)$", out, re.M)}
    # cluster override > overlays/prod.yaml > inventory defaults > built-in default
    key = "components.envoy-gateway.values.config.envoyGateway.envoyProxy.provider.kubernetes.envoyDeployment.replicas"
    assert rows[key] == (
        "5",
        f"inventory/clusters/prod.yaml:{_line('inventory/clusters/prod.yaml', 'envoyDeployment: {replicas: 5}')}",
    )
    assert rows["kubernetesVersion"] == (
        '"1.35"',
        f"overlays/prod.yaml:{_line('overlays/prod.yaml', 'kubernetesVersion')}",
    )
    assert (
        rows["sync.apps.retryInterval"][1] == f"inventory/fleet.yaml:{_line('inventory/fleet.yaml', 'apps: {interval')}"
    )
    assert rows["networking.privateEndpoint"] == ("true", "(built-in default)")
    assert rows["region"] == (
        '"us-east-1"',
        f"inventory/clusters/prod.yaml:{_line('inventory/clusters/prod.yaml', 'region: us-east-1')}",
    )


def test_dotted_key_filters_and_unknown_names_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(capsys, "dev-us-central1", "nodeGroups")
    assert code == 0 and out.count("\n") == 1 and "inventory/clusters/dev.yaml:" in out
    assert _explain(capsys, "dev-us-centrall")[0] == 2
    code, out = _explain(capsys, "dev-us-central1", "nodeGroup")
    assert code == 2 and "has no setting 'nodeGroup'" in out
