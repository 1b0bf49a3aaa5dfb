"""Diff for review: in a temporary git repository with two commits, ``fleetgen diff --base HEAD~1`` reports
the clusters and resources the second commit changes, in text, markdown and JSON."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from _buildkit import options, reference_build, shared_cache_dir, tools
from conftest import REPO, copy_reference_fleet

from generator import cli
from generator.verify.diff import diff_builds, format_markdown, format_text, images_of

GIT = ("git", "-c", "user.name=fleetgen tests", "-c", "user.email=tests@example.com", "-c", "commit.gpgsign=false")


def _git(repo: Path, *args: str) -> None:
    subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository whose fleet (in a sub-folder) bumps the checkout image in its second commit."""
    top = tmp_path_factory.mktemp("repo")
    root = copy_reference_fleet(top / "platform")
    _git(top, "init", "--quiet", "--initial-branch=main")
    _git(top, "add", ".")
    _git(top, "commit", "--quiet", "-m", "reference fleet")
    apps = root / "inventory" / "apps.yaml"
    text = apps.read_text()
    assert 'repository: ghcr.io/acme/checkout, tag: "1.4.2"' in text
    apps.write_text(text.replace('repository: ghcr.io/acme/checkout, tag: "1.4.2"',
                                 'repository: ghcr.io/acme/checkout, tag: "1.5.0"'))
    _git(top, "commit", "--quiet", "-am", "checkout 1.5.0")
    return root


def _checkout_clusters() -> set[str]:
    # not the clusters whose environment overlay pins checkout's own tag (dev: image automation writes it there)
    from generator.inventory.loader import load_inventory
    from generator.inventory.resolve import resolve

    settings = {c.name: c.settings.apps.get("checkout") for c in resolve(load_inventory(REPO)).clusters}
    return {name for name, build in reference_build().clusters.items()
            if any(r.kind == "HelmRelease" and r.name == "checkout" for r in build.resources.values())
            and not (settings[name] and settings[name].image)}


def test_diff_reports_the_clusters_and_resources_of_the_change(repo: Path) -> None:
    result = diff_builds(repo, "HEAD~1", options(), tools=tools())
    grouped = result.comparison.by_cluster()
    assert set(grouped) == _checkout_clusters() and grouped
    for changes in grouped.values():
        assert {c.status for c in changes} == {"changed"}
        labels = {c.label for c in changes}
        assert "HelmRelease checkout/checkout" in labels
        assert "Deployment checkout/checkout" in labels
        assert all("checkout" in label for label in labels)
    assert result.images
    for image in result.images:
        assert image.removed and all("1.4.2" in i for i in image.removed)
        assert image.added and all("1.5.0" in i for i in image.added)
    text = format_text(result)
    assert "HelmRelease checkout/checkout" in text
    assert re.search(r"^\+\s+image: ghcr.io/acme/checkout:1.5.0$", text, re.M)
    markdown = format_markdown(result)
    assert "<details><summary><b>" in markdown and "```diff" in markdown
    # the blast radius above the per-resource diffs: every affected cluster is a node of a Mermaid diagram
    diagram = markdown[markdown.index("```mermaid\n"):markdown.index("<details>")]
    assert all(f'["{cluster}<br/>' in diagram for cluster in grouped)
    short = format_markdown(result, limit=1500)
    assert "Truncated" in short and len(short) < 3000


def test_diff_command_line_json(repo: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETGEN_TOOLS_DIR", str(REPO / ".tools"))
    parser = cli.parser()
    args = parser.parse_args(["diff", str(repo), "--base", "HEAD~1", "--format", "json", "--exit-code",
                              "--cache-dir", str(shared_cache_dir())])
    assert args.func(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert set(report["clusters"]) == _checkout_clusters()
    assert report["summary"]["removed"] == 0 and report["summary"]["added"] == 0
    # no change against itself; the worktree is gone afterwards
    args = parser.parse_args(["diff", str(repo), "--base", "HEAD", "--cache-dir", str(shared_cache_dir())])
    assert args.func(args) == 0
    assert "no cluster receives anything different" in capsys.readouterr().out
    listing = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True, check=True)
    assert len(listing.stdout.strip().splitlines()) == 1


def test_external_differ(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.verify.diff import render_result

    result = diff_builds(repo, "HEAD~1", options(clusters=("prod-us-east-1",)), tools=tools())
    monkeypatch.setenv("FLEETGEN_DIFF", "diff -u --label old --label new")
    out = render_result(result, "text", stream=open("/dev/null", "w"))  # noqa: SIM115
    assert "--- old" in out and "+++ new" in out


def test_images_of() -> None:
    text = ("---\nkind: HelmRelease\nspec:\n  values:\n    image: {repository: r/a, tag: '1'}\n---\n"
            "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - image: r/b:2\n")
    assert images_of(text) == {"r/a:1", "r/b:2"}
    assert images_of("not: [valid") == set()
