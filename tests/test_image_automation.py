"""Image automation and promotion: setter semantics as upstream has them, the automation loop offline
(setter update of the inventory → re-render → clean `render --check`, only dev clusters change), update paths
that never overlap, `fleetgen promote` (only the target environment changes, comments survive, no skipping)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _buildkit import options, tools
from conftest import REPO, tree_digest

from generator.build.fleet import build_fleet
from generator.cli import main
from generator.errors import InventoryError
from generator.inventory.loader import load_inventory
from generator.inventory.resolve import resolve
from generator.inventory.setters import LatestRef, apply_setters, find_markers, marker_of, update_path
from generator.render.imageautomation import automations, marker
from generator.render.pipeline import plan, render
from generator.verify.golden import compare_trees
from generator.verify.promote import promote

CHECKOUT = {"flux-system:checkout": LatestRef("ghcr.io/acme/checkout", "1.5.0")}


# --- setter semantics (image-automation-controller v1.2.1, kyaml v0.21.1 fieldmeta) --------------------------


@pytest.mark.parametrize(
    ("comment", "setter"),
    [
        ('# {"$imagepolicy": "flux-system:checkout:tag"}', "flux-system:checkout:tag"),
        ('#{"$imagepolicy":"ns:app"}', "ns:app"),
        ('## {"$imagepolicy": "ns:app:digest"}', "ns:app:digest"),  # every leading '#' is stripped
        ('# {"$imagepolicy": "ns:app:tag"} dev tag', None),  # text after the JSON: not a marker
        ('# {"$imagepolicy": "ns:app:tag", "n": 1}', None),  # not map[string]string
        ('# {"$imagepolicy": ""}', None),
        ("# $imagepolicy: ns:app:tag", None),
    ],
)
def test_marker_of_reads_comments_like_kyaml(comment: str, setter: str | None) -> None:
    assert marker_of(comment) == setter


def test_setters_replace_the_whole_value_and_keep_its_style() -> None:
    text = (
        "a:\n"
        '  tag: "1.4.2" # {"$imagepolicy": "flux-system:checkout:tag"}\n'
        "  name: ghcr.io/old/checkout # {\"$imagepolicy\": \"flux-system:checkout:name\"}\n"
        "  image: 'ghcr.io/acme/checkout:1.4.2' # {\"$imagepolicy\": \"flux-system:checkout\"}\n"
        "  plain: 1.4.2 # {\"$imagepolicy\": \"flux-system:checkout:tag\"}\n"
        "  other: 1.4.2 # {\"$imagepolicy\": \"flux-system:unknown:tag\"}\n"
        "list:\n"
        "  - 1.0.0 # {\"$imagepolicy\": \"flux-system:checkout:tag\"}\n"
    )
    new, changes = apply_setters(text, CHECKOUT, "f.yaml")
    assert new.splitlines() == [
        "a:",
        '  tag: "1.5.0" # {"$imagepolicy": "flux-system:checkout:tag"}',
        '  name: ghcr.io/acme/checkout # {"$imagepolicy": "flux-system:checkout:name"}',
        "  image: 'ghcr.io/acme/checkout:1.5.0' # {\"$imagepolicy\": \"flux-system:checkout\"}",
        '  plain: 1.5.0 # {"$imagepolicy": "flux-system:checkout:tag"}',
        '  other: 1.4.2 # {"$imagepolicy": "flux-system:unknown:tag"}',  # unknown setter: untouched
        "list:",
        '  - 1.5.0 # {"$imagepolicy": "flux-system:checkout:tag"}',
    ]
    assert len(changes) == 5
    # a plain value that YAML 1.1 reads as a number is double-quoted (kyaml FormatNonStringStyle)
    two, _ = apply_setters('tag: 1.4 # {"$imagepolicy": "ns:app:tag"}\n', {"ns:app": LatestRef("r/app", "1.5")})
    assert two == 'tag: "1.5" # {"$imagepolicy": "ns:app:tag"}\n'
    # the full-image setter carries the digest when the policy reflects one
    ref = LatestRef("r/app", "2.0.0", "sha256:" + "a" * 64)
    three, _ = apply_setters('i: r/app:1.0.0 # {"$imagepolicy": "ns:app"}\n', {"ns:app": ref})
    assert three == f'i: r/app:2.0.0@sha256:{"a" * 64} # {{"$imagepolicy": "ns:app"}}\n'


def test_files_without_the_quoted_token_are_not_read() -> None:
    text = "tag: 1.0.0 # {$imagepolicy: ns:app:tag}\n"
    assert find_markers(text) == []
    assert apply_setters(text, {"ns:app": LatestRef("r/app", "2.0.0")}) == (text, [])


# --- the loop: automation edits the inventory, the re-render follows, only dev changes ------------------------


def test_automation_loop_changes_only_dev_and_render_check_is_clean(fleet_root: Path) -> None:
    out = fleet_root / "out"
    render(fleet_root, out)
    [automation] = automations(resolve(load_inventory(fleet_root)))
    assert (automation.environment, automation.update_path) == ("dev", "overlays/dev.yaml")
    before_build = build_fleet(fleet_root, options(), tools=tools())
    rendered_before = tree_digest(out)

    changes = update_path(fleet_root, automation.update_path, CHECKOUT)  # what the controller does

    assert [(c.file, c.setter, c.old, c.new) for c in changes] == [
        ("overlays/dev.yaml", "flux-system:checkout:tag", "1.4.2", "1.5.0")
    ]
    assert not render(fleet_root, out, check=True).clean  # main would be red until CI re-renders ...
    render(fleet_root, out)  # ... which the scaffold's CI does on the automation's branch
    assert render(fleet_root, out, check=True).clean
    changed = {p for p, h in tree_digest(out).items() if rendered_before.get(p) != h}
    assert changed and all(p.startswith("fleet/apps/overlays/dev/") or p == ".fleetgen/manifest.json"
                           for p in changed), changed
    after_build = build_fleet(fleet_root, options(), tools=tools())
    comparison = compare_trees(before_build.files(), after_build.files())
    affected = {c.cluster for c in comparison.changes}
    dev = {c.cluster.name for c in resolve(load_inventory(fleet_root)).clusters if c.cluster.environment == "dev"}
    assert affected and affected <= dev
    # a second run finds nothing to do
    assert update_path(fleet_root, automation.update_path, CHECKOUT) == []


def test_update_paths_never_overlap(fleet_root: Path) -> None:
    fleet_file = fleet_root / "inventory" / "fleet.yaml"
    fleet_file.write_text(fleet_file.read_text().replace(
        "  environments: [dev, staging, prod]\n",
        "  environments: [dev, staging, prod]\n"
        "  imageAutomation: {environments: [dev, staging], provider: aws, secretName: ghcr-pull}\n"))
    staging = fleet_root / "overlays" / "staging.yaml"
    staging.write_text(staging.read_text() + "apps:\n" + "".join(
        f'  {app}:\n    image:\n      tag: "{tag}" # {{"$imagepolicy": "flux-system:{app}:tag"}}\n'
        for app, tag in (("catalog", "0.19.3"), ("checkout", "1.4.2"))))
    found = automations(resolve(load_inventory(fleet_root)))
    assert [a.environment for a in found] == ["dev", "staging"]
    files = plan(fleet_root).files
    staging_file = f"fleet/clusters/{found[1].cluster.name}/image-automation.yaml"
    assert "path: ./overlays/staging.yaml" in files[staging_file]
    assert "  provider: aws\n  secretRef:\n    name: ghcr-pull\n" in files[staging_file]
    paths = [Path(a.update_path) for a in found]
    for one in paths:
        for other in paths:
            assert one == other or not (one.is_relative_to(other) or other.is_relative_to(one))
    assert len(set(paths)) == len(found)
    # and each writes only its own file: a dev update leaves staging's tags alone
    update_path(fleet_root, found[0].update_path, CHECKOUT)
    assert '"1.4.2" # {"$imagepolicy": "flux-system:checkout:tag"}' in staging.read_text()


def test_prod_never_gets_automation_and_markers_are_checked(fleet_root: Path) -> None:
    fleet_file = fleet_root / "inventory" / "fleet.yaml"
    original = fleet_file.read_text()
    fleet_file.write_text(original.replace(
        "  environments: [dev, staging, prod]\n",
        "  environments: [dev, staging, prod]\n  imageAutomation: {environments: [prod]}\n"))
    with pytest.raises(InventoryError, match="last environment of the promotion order"):
        plan(fleet_root)
    fleet_file.write_text(original)
    dev = fleet_root / "overlays" / "dev.yaml"
    dev.write_text(dev.read_text().replace(' # {"$imagepolicy": "flux-system:checkout:tag"}', ""))
    with pytest.raises(InventoryError, match=r"overlays/dev.yaml:\d+:\d+: apps.checkout.image.tag: .*setter marker"):
        plan(fleet_root)


def test_golden_has_image_automation_on_one_dev_cluster_only() -> None:
    fleet = resolve(load_inventory(REPO))
    envs = {c.name: c.cluster.environment for c in fleet.clusters}
    [automation] = automations(fleet)
    kinds = {"imagerepository", "imagepolicy", "imageupdateautomation"}
    found: dict[str, set[str]] = {}
    for path in (REPO / "golden").rglob("*.yaml"):
        kind = path.name.split(".", 1)[0]
        if kind in kinds:
            found.setdefault(path.relative_to(REPO / "golden").parts[0], set()).add(kind)
    assert found == {automation.cluster.name: kinds}
    assert envs[automation.cluster.name] == "dev"
    policies = {p.name for p in (REPO / "golden" / automation.cluster.name).rglob("imagepolicy.*.yaml")}
    assert policies == {f"imagepolicy.flux-system.{a.name}.yaml" for a in fleet.apps if a.image_policy}
    assert marker("checkout") in (REPO / "overlays" / "dev.yaml").read_text()


# --- promote ------------------------------------------------------------------------------------------------


def test_promote_to_staging_changes_only_staging(fleet_root: Path) -> None:
    dev = fleet_root / "overlays" / "dev.yaml"
    dev.write_text(dev.read_text().replace('"1.4.2" # {"$imagepolicy"', '"1.5.0" # {"$imagepolicy"'))
    staging = fleet_root / "overlays" / "staging.yaml"
    staging.write_text(staging.read_text() + "# a note the promotion must keep\n")
    before = staging.read_text()
    before_build = build_fleet(fleet_root, options(), tools=tools())
    before_render = plan(fleet_root).files

    promotion, report = promote(fleet_root, "checkout", "staging", options=options(), tools=tools())

    assert (promotion.source, promotion.old[0], promotion.new[0]) == ("dev", "1.4.2", "1.5.0")
    after = staging.read_text()
    added = ["apps:", "  checkout:", "    image:", '      tag: "1.5.0"']
    assert "\n".join(added) in after  # the image is added in block style ...
    assert [line for line in after.splitlines() if line not in added] == before.splitlines()  # ... nothing else moves
    after_render = plan(fleet_root).files
    changed = {p for p in before_render.keys() | after_render.keys() if before_render.get(p) != after_render.get(p)}
    assert changed == {"fleet/apps/overlays/staging/payments/kustomization.yaml"}  # the renders differ only there
    after_build = build_fleet(fleet_root, options(), tools=tools())
    affected = {c.cluster for c in compare_trees(before_build.files(), after_build.files()).changes}
    fleet = resolve(load_inventory(fleet_root))
    assert affected == {c.name for c in fleet.clusters if c.cluster.environment == "staging"
                        and any(a.name == "checkout" for a in c.apps)}
    assert "2 cluster(s) affected" in report and "staging-us-east-1" in report

    # a second promotion replaces the tag in place, character for character
    dev.write_text(dev.read_text().replace('"1.5.0" # {"$imagepolicy"', '"1.6.1" # {"$imagepolicy"'))
    promote(fleet_root, "checkout", "staging", options=options(), tools=tools())
    assert staging.read_text() == after.replace('tag: "1.5.0"', 'tag: "1.6.1"')


def test_promote_refuses_to_skip_and_writes_nothing(fleet_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tree_digest(fleet_root)
    assert main(["promote", str(fleet_root), "checkout", "--to", "prod", "--from", "dev"]) == 2
    err = capsys.readouterr().err
    assert "inventory/fleet.yaml:" in err and "skips the promotion order" in err and "--force" in err
    assert main(["promote", str(fleet_root), "checkout", "--to", "dev"]) == 2
    assert "first environment" in capsys.readouterr().err
    assert main(["promote", str(fleet_root), "storefront-web", "--to", "staging"]) == 2
    assert "inventory/apps.yaml:" in capsys.readouterr().err
    assert tree_digest(fleet_root) == before


def test_readme_mermaid_diagrams_render(tmp_path: Path) -> None:
    """Every Mermaid diagram of the README (the image automation loop among them) parses and renders."""
    from _browser import mermaid_results

    text = (REPO / "README.md").read_text(encoding="utf-8")
    diagrams = [block.split("```", 1)[0] for block in text.split("```mermaid\n")[1:]]
    assert any("ImageUpdateAutomation" in d for d in diagrams)
    results = mermaid_results(diagrams, tmp_path)
    assert all(r["ok"] for r in results), [r.get("error") for r in results]
