"""Vendor Flux's own envsubst and varsub tests into tests/conformance/flux/ (run when the Flux pin moves).

    python tests/conformance/extract_flux.py --repo PATH-TO-A-FLUXCD-PKG-CLONE

Flux 2.9.4's kustomize-controller v1.9.4 builds with fluxcd/pkg ``envsubst/v1.7.0`` and ``kustomize/v1.35.4``
(its go.mod). Copies from those tags: envsubst/{eval_test.go, funcs_test.go, funcs.go} and
kustomize/{kustomize_varsub_test.go, testdata/...} used by the varsub tests, plus LICENSE (Apache-2.0), and
writes SOURCES.tsv (repository, tags, commits, path, blob id).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

REPOSITORY = "fluxcd/pkg"
PINS = {
    "envsubst/v1.7.0": ("envsubst/eval_test.go", "envsubst/funcs_test.go", "envsubst/funcs.go", "LICENSE"),
    "kustomize/v1.35.4": (
        "kustomize/kustomize_varsub_test.go",
        "kustomize/testdata/kustomization_varsub.yaml",
        "kustomize/testdata/kustomization_varsub_expected.yaml",
        "kustomize/testdata/kustomization_varsub_novars.yaml",
        "kustomize/testdata/configmap.yaml",
        "kustomize/testdata/resources",
        "kustomize/testdata/varsubstrict",
        "kustomize/testdata/varsubalways",
    ),
}
OUT = Path(__file__).parent / "flux"


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    """Extract into tests/conformance/flux/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="a git clone (or mirror) of fluxcd/pkg")
    args = parser.parse_args()
    if OUT.exists():
        shutil.rmtree(OUT)
    lines = [f"# repository\t{REPOSITORY}", "# license\tApache-2.0 (LICENSE)", "tag\tcommit\tpath\tblob"]
    for tag, prefixes in PINS.items():
        commit = git(args.repo, "rev-parse", f"{tag}^{{commit}}").strip()
        for line in git(args.repo, "ls-tree", "-r", tag, "--", *prefixes).splitlines():
            meta, path = line.split("\t", 1)
            blob = meta.split()[2]
            target = OUT / path
            target.parent.mkdir(parents=True, exist_ok=True)
            blob_bytes = subprocess.run(
                ["git", "-C", str(args.repo), "cat-file", "blob", blob], check=True, capture_output=True
            ).stdout
            target.write_bytes(blob_bytes)
            lines.append(f"{tag}\t{commit}\t{path}\t{blob}")
    (OUT / "SOURCES.tsv").write_text("\n".join(lines) + "\n")
    print(f"{len(lines) - 3} files from {REPOSITORY} into {OUT}")


if __name__ == "__main__":
    main()
