"""Grafana's single sign-on from ``fleet.grafana.sso``: generic OAuth 2 / OpenID Connect.

The grafana component declares the Grafana (a ``grafana.integreatly.org/v1beta1`` Grafana config) and its route
(``grafana.<domain>`` on the hub's Gateway fleet-ingest, no basic auth: people sign in to Grafana). This module
merges the inventory's SSO settings into that Grafana on each cluster that runs it, as a patch of the cluster's
configs layer (so a change of the settings changes the Grafana object and the operator rolls the pods):

- ``spec.config["auth.generic_oauth"]``: Grafana's generic OAuth settings (``enabled``, ``client_id``,
  ``scopes``, ``auth_url``, ``token_url``, ``api_url``, ``use_pkce``, ``groups_attribute_path``,
  ``role_attribute_path`` with ``role_attribute_strict``; Grafana docs "Configure Generic OAuth
  authentication"), and ``auth.disable_login_form`` (sign-in through the provider only);
- the client secret as ``GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET`` (Grafana's ``GF_<SECTION>_<KEY>`` environment
  override) from the Secret ``grafana-oauth``, which an ExternalSecret reads from the hub's secret store — the
  operator merges ``spec.deployment`` into its Deployment, container ``grafana`` by name (grafana-operator v5.24.0
  controllers/reconcilers/grafana/deployment_reconciler.go; examples/grafana/keycloak_sso/resources.yaml).
  Without a secrets backend no ExternalSecret is rendered: the operator creates that Secret by hand.
"""

from __future__ import annotations

from generator.errors import InventoryError, Problem
from generator.inventory.models import GrafanaSso
from generator.inventory.resolve import ResolvedFleet
from generator.render.externalsecrets import ESO_API
from generator.render.planner import Contribution, Planner
from generator.yamlio import dump_documents

SSO_DIR = "infrastructure/grafana-sso"
GRAFANA_API = "grafana.integreatly.org/v1beta1"
#: The Secret holding the client secret (key ``client-secret``) and the container the operator names ``grafana``.
SECRET = "grafana-oauth"
SECRET_KEY = "client-secret"
CONTAINER = "grafana"


def role_attribute_path(sso: GrafanaSso) -> str:
    """The JMESPath mapping the provider's groups claim to a Grafana role (first match wins)."""
    claim = sso.groups_claim
    terms = [f"contains({claim}[*], '{group}') && '{role}'"
             for role, groups in (("Admin", sso.admin_groups), ("Editor", sso.editor_groups),
                                  ("Viewer", sso.viewer_groups)) for group in groups]
    if not sso.viewer_groups:
        terms.append("'Viewer'")  # every authenticated user may view
    return " || ".join(terms)


def _settings(sso: GrafanaSso) -> dict[str, str]:
    return {
        "enabled": "true",
        "name": sso.name,
        "client_id": sso.client_id,
        "scopes": " ".join(sso.scopes),
        "auth_url": sso.auth_url,
        "token_url": sso.token_url,
        "api_url": sso.api_url,
        "use_pkce": "true",
        "allow_sign_up": "true",
        "groups_attribute_path": sso.groups_claim,
        "role_attribute_path": role_attribute_path(sso),
        # a user whose groups map to no role is refused, not given Grafana's default role
        "role_attribute_strict": "true",
    }


def plan_grafana_sso(fleet: ResolvedFleet) -> Contribution:
    """The SSO patch and client-secret ExternalSecret of every cluster running the fleet's Grafana."""
    contribution = Contribution()
    sso = fleet.fleet.grafana.sso
    if sso is None:
        return contribution
    backend = fleet.fleet.security.secrets
    planner = Planner()
    fleet_file = fleet.inventory.fleet.file.file
    found = False
    for cluster in fleet.clusters:
        grafanas = [cfg for c in cluster.components for cfg in c.component.configs
                    if cfg.get("kind") == "Grafana" and cfg.get("apiVersion") == GRAFANA_API]
        for grafana in grafanas:
            found = True
            name, namespace = grafana["metadata"]["name"], grafana["metadata"]["namespace"]
            patch = {
                "apiVersion": GRAFANA_API,
                "kind": "Grafana",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "config": {"auth": {"disable_login_form": "true"}, "auth.generic_oauth": _settings(sso)},
                    "deployment": {"spec": {"template": {"spec": {"containers": [{
                        "name": CONTAINER,
                        "env": [{"name": "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET",
                                 "valueFrom": {"secretKeyRef": {"name": SECRET, "key": SECRET_KEY}}}],
                    }]}}}},
                },
            }
            contribution.cluster_config_patches.setdefault(cluster.name, []).append(
                {"target": {"group": "grafana.integreatly.org", "kind": "Grafana", "name": name,
                            "namespace": namespace},
                 "patch": dump_documents([patch])})
            if backend is None:  # no secrets backend: the operator creates the Secret grafana-oauth by hand
                continue
            secret = {
                "apiVersion": ESO_API,
                "kind": "ExternalSecret",
                "metadata": {"name": SECRET, "namespace": namespace},
                "spec": {
                    "refreshInterval": "1h",
                    "secretStoreRef": {"kind": "ClusterSecretStore", "name": backend.store_name},
                    "target": {"name": SECRET, "creationPolicy": "Owner"},
                    "data": [{"secretKey": SECRET_KEY,
                              "remoteRef": {"key": sso.client_secret_key, "property": SECRET_KEY}}],
                },
            }
            directory = f"{SSO_DIR}/{cluster.name}"
            sources = [fleet_file, *cluster.sources]
            planner.add_yaml(f"{directory}/external-secret.yaml", [secret], sources)
            planner.add_yaml(f"{directory}/kustomization.yaml",
                             [{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                               "resources": ["external-secret.yaml"]}], sources)
            contribution.cluster_configs.setdefault(cluster.name, []).append(directory)
    if not found:
        position = fleet.inventory.fleet.file.position(("fleet", "grafana", "sso"))
        raise InventoryError([Problem(position.file, position.line, position.column, "fleet.grafana.sso",
                                      f"no cluster runs a component with a {GRAFANA_API} Grafana config "
                                      "to sign in to")])
    contribution.files = planner.files
    return contribution
