"""Stage 3, build: the rendered tree in, what every cluster receives out (golden files).

``fleet.build_fleet`` builds the selected clusters in parallel; ``walker.Builder`` walks one cluster's Flux graph
from its root Kustomization as the controllers would, running one step class per kind of work, all on the shared
``steps.StepRunner`` (work tree, memoised YAML, ``cache``): ``kustomize`` (a Kustomization's path with the real
kustomize, then post-build: ``substitute`` with ``envsubst`` and ``goyaml``, Flux's own substitution), ``helm``
(a HelmRelease with the real helm template) and ``compose`` (the hub's Crossplane XRs through their compositions,
offline). ``tree`` is the rendered repo as Flux's source; ``model`` the results and small helpers.
"""
