"""The compose step: the hub's composite resources run through their compositions offline (the real
function-pythonic engine), so every composed managed resource is in the hub's build."""

from __future__ import annotations

from generator.build.model import BuiltResource, ClusterState, golden_name, load_yaml, meta_of
from generator.build.steps import StepRunner


class ComposeSteps(StepRunner):
    """Crossplane XRs on the hub: composed offline, each composed resource added to the build."""

    def _compose(self, state: ClusterState) -> None:
        """Every Crossplane XR this cluster receives, composed offline by its Composition's function (the same
        code the hub runs): each composed resource becomes a golden file under ``<group>/<xr>/``."""
        from generator.render.crossplane.engine import RESOURCE_NAME_ANNOTATION, compose_objects

        built = [(res.group, doc) for res in state.build.resources.values()
                 if res.kind in ("Composition", "KubernetesCluster", "XKubernetesCluster", "Database", "XDatabase",
                                 "Cache", "XCache", "Network", "XNetwork", "DnsFailover", "XDnsFailover",
                                 "ObjectStore", "XObjectStore")
                 for doc in load_yaml(res.text)]
        if not any(doc.get("kind") == "Composition" for _, doc in built):
            return
        groups = {(str(meta_of(doc).get("name")), str(doc.get("kind"))): group for group, doc in built}
        for item in compose_objects([doc for _, doc in built]):
            meta = meta_of(item.xr)
            xr_ns, xr_name = str(meta.get("namespace") or ""), str(meta.get("name"))
            claim = (meta.get("labels") or {}).get("crossplane.io/claim-name")
            parent = groups.get((xr_name, str(item.xr.get("kind"))), groups.get((str(claim), str(item.xr.get(
                "kind", "")).removeprefix("X"))))
            group = f"{parent or 'crossplane-composed'}/{golden_name(str(item.xr.get('kind')), xr_ns, xr_name)[:-5]}"
            for obj in item.resources.values():
                if meta_of(obj).get("name"):  # a nested XR: its own resources sit beside its parent's
                    groups[(str(meta_of(obj)["name"]), str(obj["kind"]))] = parent or "crossplane-composed"
                name = str(meta_of(obj)["annotations"][RESOURCE_NAME_ANNOTATION])
                obj_ns = str(meta_of(obj).get("namespace") or "")
                rel = f"{group}/{golden_name(str(obj['kind']), obj_ns, name)}"
                state.build.resources[rel] = BuiltResource(str(obj["apiVersion"]), str(obj["kind"]), obj_ns, name,
                                                           group, self.golden_text(obj))
