"""Vendor Kyverno's own ValidatingPolicy test cases into tests/conformance/kyverno/ (run when the pin moves).

    python tests/conformance/extract_kyverno.py --repo PATH-TO-A-KYVERNO-CLONE [--tag v1.19.0]

Copies, from the tag's tree (``git show``: the clone's checkout does not matter):

* the chainsaw conformance tests that create ValidatingPolicies/NamespacedValidatingPolicies
  (test/conformance/chainsaw/{validating-policies, namespaced-validating-policies,
  force-failure-policy-ignore/validating-policy, policy-exceptions-disabled/validating-policies}) and the step
  templates they use;
* every CLI test folder under test/cli whose files contain a ValidatingPolicy or NamespacedValidatingPolicy
  (the ``kyverno test`` fixtures Kyverno's CI runs);
* the ``kyverno apply`` Go tests about ValidatingPolicies (cmd/cli/kubectl-kyverno/commands/apply/command_test.go)
  and every folder their cases read;
* the Helm values the conformance workflow installs Kyverno with for those folders (scripts/config/{standard,
  default,force-failure-policy-ignore}/kyverno.yaml), and LICENSE and NOTICE (Apache-2.0).

Writes SOURCES.tsv: repository, tag, commit, then one line per file with its path and git blob id.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

REPOSITORY = "kyverno/kyverno"
TAG = "v1.19.0"
COMMIT = "ee97ce09538b09b6f1b03853cc41a62654d6a58f"
CHAINSAW = (
    "test/conformance/chainsaw/validating-policies",
    "test/conformance/chainsaw/namespaced-validating-policies",
    "test/conformance/chainsaw/force-failure-policy-ignore/validating-policy",
    "test/conformance/chainsaw/policy-exceptions-disabled/validating-policies",
    "test/conformance/chainsaw/_step-templates",
)
CONFIGS = (
    "scripts/config/standard/kyverno.yaml",
    "scripts/config/default/kyverno.yaml",
    "scripts/config/force-failure-policy-ignore/kyverno.yaml",
    ".github/workflows/tests-conformance.yaml",
)
#: The ``kyverno apply`` Go tests about ValidatingPolicies, and the folders their cases read.
APPLY_TEST = "cmd/cli/kubectl-kyverno/commands/apply/command_test.go"
APPLY_FUNCTIONS = ("Test_Apply_ValidatingPolicies", "Test_Apply_ValidatingPoliciesWithMultipleCRDS")
OUT = Path(__file__).parent / "kyverno"


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` (a clone or a bare mirror)."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def tree(repo: Path, tag: str, prefix: str) -> dict[str, str]:
    """{path: blob id} of every file under ``prefix`` at ``tag``."""
    out = {}
    for line in git(repo, "ls-tree", "-r", tag, "--", prefix).splitlines():
        meta, path = line.split("\t", 1)
        _, kind, blob = meta.split()
        if kind == "blob":
            out[path] = blob
    return out


def cli_folders(repo: Path, tag: str) -> set[str]:
    """CLI test folders (with a kyverno-test.yaml) whose files define a (Namespaced)ValidatingPolicy."""
    hits = git(repo, "grep", "-l", "-E", r"^kind: (Namespaced)?ValidatingPolicy\s*$", tag, "--", "test/cli")
    tests = {}  # folder a test covers → the folder to vendor (a test may sit in <folder>/.kyverno-test/)
    for path in tree(repo, tag, "test/cli"):
        if path.endswith("/kyverno-test.yaml"):
            folder = path.rsplit("/", 1)[0]
            tests[folder.removesuffix("/.kyverno-test")] = folder.removesuffix("/.kyverno-test")
    folders = set()
    for line in hits.splitlines():
        folder = line.split(":", 1)[1].rsplit("/", 1)[0]
        while folder not in tests and "/" in folder:
            folder = folder.rsplit("/", 1)[0]
        if folder in tests:
            folders.add(tests[folder])
    return folders


def apply_folders(repo: Path, tag: str) -> set[str]:
    """Folders the ``kyverno apply`` ValidatingPolicy test cases read (paths relative to the test's folder)."""
    import posixpath
    import re

    text = git(repo, "show", f"{tag}:{APPLY_TEST}")
    base = posixpath.dirname(APPLY_TEST)
    folders = set()
    for function in APPLY_FUNCTIONS:
        body = re.search(rf"func {function}\(t \*testing\.T\) \{{(.*?)\n\}}\n", text, re.S)
        assert body, function
        for path in re.findall(r'"(\.\./[^"]+)"', body.group(1)):
            folders.add(posixpath.dirname(posixpath.normpath(posixpath.join(base, path))))
    return folders


def main() -> None:
    """Extract into tests/conformance/kyverno/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="a git clone (or mirror) of kyverno/kyverno")
    parser.add_argument("--tag", default=TAG)
    parser.add_argument("--commit", default=COMMIT, help="the commit the tag must resolve to")
    args = parser.parse_args()
    commit = git(args.repo, "rev-parse", f"{args.tag}^{{commit}}").strip()
    if commit != args.commit:
        raise SystemExit(f"{args.tag} is {commit}, not the pinned {args.commit}")
    files: dict[str, str] = {}
    folders = sorted(cli_folders(args.repo, args.tag) | apply_folders(args.repo, args.tag))
    for prefix in (*CHAINSAW, *folders, *CONFIGS, APPLY_TEST, "LICENSE", "NOTICE"):
        files.update(tree(args.repo, args.tag, prefix))
    if OUT.exists():
        shutil.rmtree(OUT)
    for path, blob in sorted(files.items()):
        target = OUT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(
            subprocess.run(
                ["git", "-C", str(args.repo), "cat-file", "blob", blob], check=True, capture_output=True
            ).stdout
        )
    lines = [
        f"# repository\t{REPOSITORY}",
        f"# tag\t{args.tag}",
        f"# commit\t{commit}",
        "# license\tApache-2.0 (LICENSE and NOTICE kept as the license requires)",
        "path\tblob",
        *(f"{path}\t{blob}" for path, blob in sorted(files.items())),
    ]
    (OUT / "SOURCES.tsv").write_text("\n".join(lines) + "\n")
    print(f"{len(files)} files from {REPOSITORY}@{args.tag} ({commit}) into {OUT}")


if __name__ == "__main__":
    main()
