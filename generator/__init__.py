"""fleetgen: render a GitOps fleet (Flux, Crossplane, Kyverno) from one inventory."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed distribution's version: the git tag it was built from (setuptools-scm, see pyproject.toml).
    __version__ = version("fleetgen")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0+unknown"
