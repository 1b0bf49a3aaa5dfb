"""fleetgen: render a GitOps fleet (Flux, Crossplane, Kyverno) from one inventory."""

__version__ = "0.1.0"
