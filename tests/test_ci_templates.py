"""The scaffold's CI files, rendered by the real copier: official schemas (check-jsonschema's vendored
GitHub workflow and GitLab CI schemas) and zizmor's audits of the GitHub workflow, plus the hardening rules
the template promises (no expression inside `run:`, actions pinned by commit, no persisted credentials)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from test_copier import make_template

#: zizmor is a compiled program; its PyPI wheel puts it next to this interpreter.
ZIZMOR = str(Path(sys.executable).with_name("zizmor"))
#: A full commit SHA, then the release tag as a comment: `uses: owner/action@<40 hex>  # vX.Y.Z`.
PINNED_USE = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+$")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The GitHub workflow and the GitLab CI file of two scaffolds (copier's pretend-free copy, no tasks)."""
    template = make_template(tmp_path_factory.mktemp("template") / "fleetgen")
    out: dict[str, Path] = {}
    for provider, relpath in (("github", ".github/workflows/fleet.yml"), ("gitlab", ".gitlab-ci.yml")):
        dst = tmp_path_factory.mktemp(provider)
        copier.run_copy(
            str(template),
            dst,
            data={"git_provider": provider, "ci_shards": 3},
            vcs_ref="HEAD",
            defaults=True,
            unsafe=True,
            quiet=True,
            skip_tasks=True,
        )
        out[provider] = dst / relpath
    return out


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("provider", "schema"), [("github", "vendor.github-workflows"), ("gitlab", "vendor.gitlab-ci")]
)
def test_ci_file_matches_its_official_schema(rendered: dict[str, Path], provider: str, schema: str) -> None:
    """Each rendered CI file validates against the schema its platform publishes."""
    done = _check_jsonschema(schema, rendered[provider])
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_can_fail(tmp_path: Path) -> None:
    """The schema check rejects a broken workflow (so the test above can fail)."""
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps: [{uses: 3, run: 4}]\n")
    assert _check_jsonschema("vendor.github-workflows", broken).returncode != 0


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_github_workflow_is_hardened(rendered: dict[str, Path]) -> None:
    """No ${{ }} in a run: script, every action pinned by commit with its tag, checkouts keep no credentials."""
    workflow = yaml.safe_load(rendered["github"].read_text())
    steps = _steps(workflow)
    for step in steps:
        assert "${{" not in step.get("run", ""), f"expression expanded inside run: {step['run']}"
    uses = [line.split("uses: ", 1)[1] for line in rendered["github"].read_text().splitlines() if "uses: " in line]
    assert uses and all(PINNED_USE.match(u) for u in uses), uses
    checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 4 and all(s["with"]["persist-credentials"] is False for s in checkouts)
    # image automation's branch: only the job that renders its tags onto the default branch runs there
    jobs = workflow["jobs"]
    assert jobs["image-updates"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/image-updates'"
    assert all(jobs[j]["if"] == "github.ref != 'refs/heads/image-updates'" for j in ("render", "verify"))
    assert "invoke render" in _steps({"jobs": {"j": jobs["image-updates"]}})[-1]["run"]
    comment = next(s for s in steps if s.get("name") == "comment on the pull request")
    assert comment["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert "GITHUB_STEP_SUMMARY" in next(s["run"] for s in steps if "fleetgen diff" in s.get("run", ""))
    assert workflow["jobs"]["verify"]["strategy"]["matrix"]["shard"] == [1, 2, 3]


def test_zizmor_finds_nothing(rendered: dict[str, Path]) -> None:
    """zizmor (offline audits) reports no finding on the rendered GitHub workflow."""
    done = subprocess.run(
        [ZIZMOR, "--offline", "--no-progress", str(rendered["github"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_can_fail(tmp_path: Path) -> None:
    """zizmor flags the injection and the unpinned, credential-keeping checkout the template used to have."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "name: bad\non: pull_request\npermissions: {}\njobs:\n  diff:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: actions/checkout@v4\n"
        '      - run: echo "${{ github.head_ref }}"\n'
    )
    done = subprocess.run(
        [ZIZMOR, "--offline", "--no-progress", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    for audit in ("template-injection", "artipacked", "unpinned-uses"):
        assert audit in done.stdout + done.stderr, done.stdout + done.stderr


def test_gitlab_runs_one_pipeline_per_push(rendered: dict[str, Path]) -> None:
    """workflow: rules pick the merge request pipeline when one is open, else the branch pipeline."""
    rules = yaml.safe_load(rendered["gitlab"].read_text())["workflow"]["rules"]
    assert rules == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
        {"if": "$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS", "when": "never"},
        {"if": "$CI_COMMIT_BRANCH"},
    ]
