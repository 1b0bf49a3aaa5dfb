"""The secret scan of ``fleetgen validate``: credential formats, Secret data, credential-named literals; never
the value itself in a finding, and no finding for references or public material."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from generator.verify.secretscan import entropy, looks_secret, scan

RANDOM = "Zx9kQ2vB7pL4mW8nR3tY6uI1"


def secret(data: dict[str, str], *, string: bool = False) -> dict[str, Any]:
    values = data if string else {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        ("stringData" if string else "data"): values,
    }


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("key: |\n  -----BEGIN OPENSSH PRIVATE KEY-----\n  b3Blbn\n", "private key"),
        ("id: AKIAIOSFODNN7EXAMPLE\n", "AWS access key id"),
        ("token: ghp_" + "a1B2" * 9 + "\n", "GitHub token"),
        ("url: https://hooks.slack.com/services/T0001/B0002/" + RANDOM + "\n", "Slack webhook URL"),
        (
            "jwt: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\n",
            "JSON web token",
        ),
    ],
)
def test_known_credential_formats(text: str, rule: str) -> None:
    (finding,) = scan([("fleet/x.yaml", text, [])])
    assert finding.rule == rule and finding.where == "fleet/x.yaml"
    value = max(text.split(), key=len)
    assert value[6:] not in str(finding)  # only a 4-character preview is shown


def test_secret_data_with_random_values_and_credential_literals() -> None:
    found = scan(
        [
            ("a.yaml", "", [secret({"password": RANDOM, "enabled": "true"})]),
            ("b.yaml", "", [secret({"token": "not-random-at-all-but-long"}, string=True)]),
            (
                "c.yaml",
                "",
                [
                    {
                        "apiVersion": "helm.toolkit.fluxcd.io/v2",
                        "kind": "HelmRelease",
                        "metadata": {"name": "db"},
                        "spec": {"values": {"auth": {"rootPassword": RANDOM, "existingSecret": RANDOM}}},
                    }
                ],
            ),
        ]
    )
    assert [(f.where, f.rule) for f in found] == [
        ("a.yaml Secret/s data.password", "high-entropy value in a Secret"),
        ("c.yaml HelmRelease/db spec.values.auth.rootPassword", "literal value of 'rootPassword'"),
    ]
    assert all(RANDOM not in str(f) for f in found)


def test_references_public_keys_and_redacted_values_are_not_findings() -> None:
    external = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "db"},
        "spec": {
            "data": [{"secretKey": "DATABASE_PASSWORD_PRIMARY", "remoteRef": {"key": "acme/db", "property": "x"}}]
        },
    }
    public = (
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE6QsNef3SKYhJVYSVj\n-----END PUBLIC KEY-----\n"
    )
    redacted = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r"}, "data": {"x": "**redacted**"}}
    assert scan([("x.yaml", public, [external, redacted])]) == []
    assert not looks_secret("https://token.actions.githubusercontent.com/abc")
    assert not looks_secret("${cluster_name}-external-secrets-role")
    assert entropy("aaaa") == 0.0 and entropy(RANDOM) > 4
