"""FLEET.md, ``fleetgen overview --html`` and the diff's blast-radius diagram: what they name, that Mermaid itself
parses and renders the diagrams (in headless Chromium), that inventory strings cannot inject markup, and that
one cluster's edit changes only that cluster's lines."""

from __future__ import annotations

import datetime
import difflib
import html
import random
import re
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

import pytest
from _browser import dump_dom, mermaid_results, png_pixels, screenshot
from conftest import REPO, copy_reference_fleet
from markdown_it import MarkdownIt

from generator.cli import main
from generator.render.overview import (
    FLEET_FILE,
    ClusterFacts,
    Edge,
    Group,
    Node,
    Topology,
    blast_radius_mermaid,
    component_header,
    markdown_text,
    mermaid_escape,
    render_svg,
    support_dates,
    topology_dot,
    topology_mermaid,
)
from generator.render.pipeline import plan, render
from generator.verify.diff import DiffResult, format_markdown
from generator.verify.golden import Change, Comparison

HOSTILE = (
    '</details><script>alert(1)</script> | ``` "q" [x](javascript:alert(1)) <img src=x onerror=alert(1)> $x$ *b* #1;'
)


#: The reference fleet's one per-cluster component override (inventory/clusters/prod.yaml, prod-us-east-1).
REPLICAS_KEY = ("components.envoy-gateway.values.config.envoyGateway.envoyProxy.provider.kubernetes."
                "envoyDeployment.replicas")

def _mermaid_block(text: str) -> str:
    blocks = re.findall(r"^```mermaid\n(.*?)^```$", text, re.S | re.M)
    assert len(blocks) == 1, text[:3000]
    return str(blocks[0])


def _tables(text: str) -> dict[str, list[dict[str, str]]]:
    """GFM tables of a Markdown file by their ### caption, cells as the HTML a Markdown parser makes of them."""
    md = MarkdownIt("commonmark").enable("table")
    tables: dict[str, list[dict[str, str]]] = {}
    for section in re.split(r"^### ", text, flags=re.M)[1:]:
        caption, _, body = section.partition("\n")
        page = md.render(body)
        heads = [_cell(c) for c in re.findall(r"<th>(.*?)</th>", page, re.S)]
        rows = []
        for row in re.findall(r"<tr>\s*(<td>.*?)</tr>", page, re.S):
            cells = [_cell(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
            assert len(cells) == len(heads), (caption, row)
            rows.append(dict(zip(heads, cells, strict=True)))
        tables[html.unescape(re.sub(r"\\(.)", r"\1", caption))] = rows
    return tables


def _cell(fragment: str) -> str:
    return html.unescape(re.sub(r"</?code>", "", fragment)).strip()


@pytest.fixture(scope="module")
def reference() -> str:
    return plan(REPO).files[FLEET_FILE]


def test_fleet_md_names_every_cluster_version_and_override(reference: str) -> None:
    rendered = plan(REPO)
    fleet = rendered.fleet
    tables = _tables(reference)
    matrix = {row["Cluster"]: row for row in tables["Versions per cluster (chart versions; — = not installed)"]}
    assert set(matrix) == {c.name for c in fleet.clusters}
    for cluster in fleet.clusters:
        row = matrix[cluster.name]
        assert row["Cloud"] == cluster.cluster.cloud and row["Region"] == cluster.cluster.region
        assert row["Environment"].split(" ")[0] == cluster.cluster.environment
        assert row["Kubernetes"] == cluster.settings.kubernetes_version
        assert row["Flux"] == fleet.fleet.flux.version
        running = {c.name for c in cluster.components}
        for component in fleet.components:
            cell = row[component_header(component)]
            assert cell == (component.chart.version if component.name in running else "—"), (cluster.name, cell)
    # every setting written on a cluster entry, with the file:line `fleetgen explain` reports for it
    overrides = tables["Settings a cluster overrides"]
    found = {(r["Cluster"], r["Setting"]): r["Set at"] for r in overrides}
    for source in fleet.inventory.clusters:
        cluster = fleet.cluster(source.item.name)
        assert cluster is not None
        for key, value in source.raw.items():
            if key in {"name", "cloud", "region", "environment", "role", "networking", "databases", "caches"}:
                continue
            leaves = _leaves(key, value)
            for leaf in leaves:
                assert found[(cluster.name, leaf)] == cluster.provenance[leaf], leaf
    assert len(found) == len(overrides)
    # the reference fleet's one component override, located independently of fleetgen's positions
    prod = (REPO / "inventory" / "clusters" / "prod.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(prod, 1) if "envoyDeployment: {replicas: 5}" in text)
    key = REPLICAS_KEY
    assert found[("prod-us-east-1", key)] == f"inventory/clusters/prod.yaml:{line}"
    row = next(r for r in overrides if r["Cluster"] == "prod-us-east-1" and r["Setting"] == key)
    assert (row["Value"], row["Environment's value"]) == ("5", "3")  # overlays/prod.yaml sets 3
    # components and apps a cluster adds or turns off
    added_or_off = tables["Components and apps a cluster adds or turns off"]
    membership = {(r["Cluster"], r["Name"], r["Change"]) for r in added_or_off}
    assert ("prod-eastus", "external-dns", "turns off") in membership
    assert {("prod-us-east-1", "storefront-web", "adds"), ("prod-eu-west-1", "storefront-web", "adds")} <= membership
    assert not any(name == "storefront-web" and c == "prod-europe-west1" for c, name, _ in membership)


def _leaves(prefix: str, value: object) -> list[str]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(f"{prefix}.{k}", v)]
    return [prefix]


def test_support_status_from_the_calendar_never_from_today(reference: str) -> None:
    assert support_dates("aws", "1.35") == (datetime.date(2027, 3, 27), datetime.date(2028, 3, 27))
    assert support_dates("gcp", "1.35") == (datetime.date(2027, 4, 11), datetime.date(2028, 2, 11))
    assert support_dates("azure", "1.36")[0] is not None and support_dates("azure", "1.37") == (None, None)
    assert support_dates("aws", "1.20") == (None, None)
    matrix = _tables(reference)["Versions per cluster (chart versions; — = not installed)"]
    row = next(r for r in matrix if r["Cluster"] == "dev-us-central1")  # GKE 1.35 in the reference fleet
    assert row["Support"] == "standard support ends 2027-04-11; extended support ends about 2028-02-11"
    assert datetime.date.today().isoformat() not in reference


def test_policy_posture_and_teams(reference: str) -> None:
    fleet = plan(REPO).fleet
    tables = _tables(reference)
    actions = {r["Policy"]: r for r in tables["validationAction per environment (Deny rejects, Audit reports)"]}
    assert actions["require-probes"] == {"Policy": "require-probes", "dev": "Audit", "staging": "Deny", "prod": "Deny"}
    assert actions["verify-image-signatures"]["staging"] == "Audit"  # overlays/staging.yaml actions
    teams = {r["Team"]: r for r in _tables(reference)["Teams, where their apps run, and what they review"]}
    assert set(teams) == {t.name for t in fleet.teams}
    assert teams["storefront"]["Namespaces"] == "catalog, storefront"
    assert "/fleet/apps/base/checkout/" in teams["payments"]["CODEOWNERS paths"].split()
    codeowners = plan(REPO).files["CODEOWNERS"]
    for path in teams["security"]["CODEOWNERS paths"].split():
        assert re.search(rf"^{re.escape(path)} .*@acme/security", codeowners, re.M), path


def test_render_writes_fleet_md_next_to_codeowners(tmp_path: Path) -> None:
    out = tmp_path / "out"
    render(REPO, out)
    assert (out / "CODEOWNERS").is_file()
    assert (out / FLEET_FILE).read_text(encoding="utf-8") == plan(REPO).files[FLEET_FILE]


def test_one_cluster_override_changes_exactly_its_rows(fleet_root: Path) -> None:
    before = plan(fleet_root).files[FLEET_FILE]
    prod = fleet_root / "inventory" / "clusters" / "prod.yaml"
    text = prod.read_text()
    at = next(i for i, row in enumerate(text.splitlines(), 1) if "envoyDeployment: {replicas: 5}" in row)
    prod.write_text(text.replace("envoyDeployment: {replicas: 5}", "envoyDeployment: {replicas: 7}"))
    dev = fleet_root / "inventory" / "clusters" / "dev.yaml"
    dev.write_text(dev.read_text().replace('kubernetesVersion: "1.35"', 'kubernetesVersion: "1.36"'))
    after = plan(fleet_root).files[FLEET_FILE]
    changed = [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]
    assert changed
    for line in changed:
        body = line[2:]
        assert body.startswith(("| prod-us-east-1 |", "| dev-us-central1 |")) or (
            # the cluster's node in the topology diagram shows its Kubernetes version
            body.strip().startswith("n") and '["dev-us-central1<br/>' in body
        ), line
    replica = [line for line in changed if "envoyDeployment" in line]
    assert replica == [
        f"- | prod-us-east-1 | `{REPLICAS_KEY}` | `5` | `3` | `inventory/clusters/prod.yaml:{at}` |",
        f"+ | prod-us-east-1 | `{REPLICAS_KEY}` | `7` | `3` | `inventory/clusters/prod.yaml:{at}` |",
    ]
    # matrix row, override row and diagram node of dev-us-central1: one line out, one in, each
    assert sum(1 for line in changed if "dev-us-central1" in line) == 6


def test_inventory_strings_cannot_inject_markdown(fleet_root: Path) -> None:
    prod = fleet_root / "inventory" / "clusters" / "prod.yaml"
    text = prod.read_text()
    assert "envoyDeployment: {replicas: 5}" in text
    quoted = HOSTILE.replace("\\", "\\\\").replace('"', '\\"')
    hostile = f'envoyDeployment: {{replicas: 5, note: "{quoted}"}}'
    prod.write_text(text.replace("envoyDeployment: {replicas: 5}", hostile))
    exceptions = fleet_root / "inventory" / "exceptions.yaml"
    exceptions.write_text(
        "exceptions:\n"
        "  - name: legacy-batch\n"
        "    owner: payments\n"
        f'    reason: "{quoted}"\n'
        "    expires: 2027-01-31\n"
        "    policies: [require-probes]\n"
        "    namespaces: [payments]\n"
        "    environments: [prod]\n"
    )
    text = plan(fleet_root).files[FLEET_FILE]
    page = MarkdownIt("commonmark").enable("table").render(text)
    for tag in ("<script", "<img", "<a ", "<details", "</details"):
        assert tag not in page, tag
    tables = _tables(text)
    note = next(r for r in tables["Settings a cluster overrides"] if r["Setting"].endswith(".note"))
    assert note["Value"] == '"' + HOSTILE.replace('"', '\\"') + '"'  # JSON of the value, shown literally
    exception = tables["Policy exceptions"][0]
    assert exception["Reason"] == HOSTILE and exception["Owner"] == "payments" and exception["Expires"] == "2027-01-31"
    assert exception["Environments"] == "prod" and exception["Set at"] == "inventory/exceptions.yaml:2"


def _hostile_topology() -> Topology:
    nodes = [Node("n0", HOSTILE, "hub", "prod", "1.35"), Node("n1", "end", "workload", 'x"]:::hub', "1.36")]
    region = Group("g0r0", HOSTILE, nodes=nodes)
    return Topology([Group("g0", "aws", groups=[region])], [Edge("n0", "n1", HOSTILE)], ["n0"])


def test_mermaid_parses_and_renders_every_diagram(reference: str, tmp_path: Path) -> None:
    fleet = plan(REPO).fleet
    counts = {"prod-us-east-1": {"added": 1, "changed": 2, "removed": 0}, "gone": {"added": 0, "changed": 0,
                                                                                    "removed": 4}}
    facts = {c.name: ClusterFacts(c.name, c.cluster.environment, c.cluster.role) for c in fleet.clusters}
    blast = blast_radius_mermaid(counts, facts, fleet.fleet.environments)
    compact = blast_radius_mermaid(counts, facts, fleet.fleet.environments, compact=True)
    broken = "flowchart LR\n  n0[\"a\"] -->|\"x\"| \n  subgraph"
    topology, hostile, radius, small, invalid = mermaid_results(
        [_mermaid_block(reference), topology_mermaid(_hostile_topology()), blast, compact, broken], tmp_path
    )
    assert not invalid["ok"] and invalid["error"]  # the check can fail
    assert topology["ok"], topology.get("error")
    for cluster in fleet.clusters:
        version = f"{cluster.cluster.environment} · Kubernetes {cluster.settings.kubernetes_version}"
        assert cluster.name in topology["text"] and version in topology["text"]
    for region in {c.cluster.region for c in fleet.clusters} | {"aws", "gcp", "azure"}:
        assert region in topology["text"]
    assert "VPC peering, private endpoint / workload identity" in topology["text"]
    assert "public endpoint, hub egress only / workload identity" in topology["text"]  # GKE/AKS spokes too
    assert "/ kubeconfig" not in topology["text"]
    assert hostile["ok"], hostile.get("error")
    assert hostile["elements"] == [] and hostile["text"].count(HOSTILE) >= 3  # node, region and edge, literally
    assert 'x"]:::hub · Kubernetes 1.36' in hostile["text"]
    assert radius["ok"], radius.get("error")
    assert "prod-us-east-1" in radius["text"] and "1 added · 2 changed · 0 removed" in radius["text"]
    assert "gone" in radius["text"] and "0 added · 0 changed · 4 removed" in radius["text"]
    assert "2 other clusters unchanged" in radius["text"]  # dev has two clusters, none touched
    assert small["ok"], small.get("error")
    assert "1 cluster affected1 added · 2 changed · 0 removed" in small["text"]
    assert "prod-us-east-1" not in small["text"]


def test_diff_markdown_shows_the_blast_radius_above_the_resource_diffs() -> None:
    def change(path: str) -> Change:
        return Change(path, "changed", "a: 1\n", "a: 2\n", "ConfigMap x/y")

    comparison = Comparison([change("prod-eastus/configmap.x.y.yaml"), change("management/configmap.x.y.yaml")])
    facts = {
        "prod-eastus": ClusterFacts("prod-eastus", "prod", "workload"),
        "management": ClusterFacts("management", "prod", "hub"),
        "dev-us-east-1": ClusterFacts("dev-us-east-1", "dev", "workload"),
    }
    text = format_markdown(DiffResult("main", "0" * 40, comparison, clusters=facts, environments=("dev", "prod")))
    diagram = _mermaid_block(text)
    assert text.index("```mermaid") < text.index("<details>")
    assert '"prod-eastus<br/>0 added #183; 1 changed #183; 0 removed"' in diagram
    assert '"management<br/>hub #183; 0 added #183; 1 changed #183; 0 removed"' in diagram
    assert '"1 other cluster unchanged"' in diagram and "dev-us-east-1" not in diagram
    # the diagram keeps within --limit: per environment when per cluster is too long, else left out
    many = Comparison([change(f"c{i:03}/configmap.x.y.yaml") for i in range(300)])
    facts = {f"c{i:03}": ClusterFacts(f"c{i:03}", "prod", "workload") for i in range(300)}
    text = format_markdown(DiffResult("main", "0" * 40, many, clusters=facts, environments=("prod",)), limit=40_000)
    assert '"300 clusters affected<br/>0 added #183; 300 changed #183; 0 removed"' in _mermaid_block(text)
    text = format_markdown(DiffResult("main", "0" * 40, many, clusters=facts, environments=("prod",)), limit=3_000)
    assert "```mermaid" not in text and "Blast-radius diagram left out" in text


def test_html_page_renders_the_diagram_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "fleet.html"
    assert main(["overview", str(REPO), "--html", str(page)]) == 0
    assert "wrote" in capsys.readouterr().out
    source = page.read_text(encoding="utf-8")
    assert "<svg" in source and "<script" not in source
    assert not re.search(r"""\s(?:src|href|xlink:href)=["']?(?:https?:)?//""", source)  # nothing to fetch
    dom = dump_dom(page)
    fleet = plan(REPO).fleet
    svg = dom[dom.index("<svg"):dom.index("</svg>")]
    for cluster in fleet.clusters:
        assert f'id="cluster-{cluster.name}"' in svg and f">{cluster.name}</text>" in svg, cluster.name
    width, height, pixels = png_pixels(screenshot(page, tmp_path / "fleet.png", size="900,700"))
    assert (width, height) == (900, 700)
    colours = Counter(pixels)
    assert len(colours) > 20  # not blank
    # the cloud subgraphs' fill (#e0ecff) and the hub's (#fde68a) are painted: only the diagram has them
    for rgb in ((0xE0, 0xEC, 0xFF), (0xFD, 0xE6, 0x8A)):
        close = sum(n for p, n in colours.items() if all(abs(a - b) <= 3 for a, b in zip(p, rgb, strict=True)))
        assert close > 500, (rgb, close)


def test_overview_without_graphviz_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_reference_fleet(tmp_path / "fleet")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    page = tmp_path / "fleet.html"
    assert main(["overview", str(root), "--html", str(page)]) == 3
    err = capsys.readouterr().err
    assert "dot: not found" in err and "apt-get install graphviz" in err
    assert not page.exists()


def test_overview_without_html_prints_fleet_md(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["overview", str(REPO)]) == 0
    assert capsys.readouterr().out == plan(REPO).files[FLEET_FILE]


def test_graphviz_svg_shows_hostile_strings_as_text() -> None:
    svg = render_svg(topology_dot(_hostile_topology()))
    root = ElementTree.fromstring(svg)  # well-formed XML: nothing broke out of a DOT string
    tags = {element.tag.rsplit("}", 1)[-1] for element in root.iter()}
    assert not tags & {"script", "img", "iframe", "foreignObject", "a"}, tags
    texts = [element.text or "" for element in root.iter() if element.tag.endswith("}text")]
    assert texts.count(HOSTILE) == 3  # region, node and edge label, each literally
    assert "hub · prod · Kubernetes 1.35" in texts


def _markdown_text_per_character(value: object) -> str:
    """The reference ``markdown_text``: line breaks to spaces, then every special character escaped."""
    text = re.sub(r"[\r\n\t]", " ", str(value))
    return "".join("\\" + char if char in "\\`*_[]{}<>()#+!|~$&" else char for char in text)


def _mermaid_escape_per_character(value: object) -> str:
    """The reference ``mermaid_escape``: each character outside the safe set as its entity code."""
    return "".join(c if re.fullmatch(r"[A-Za-z0-9 .,:/()@+=_-]", c) else f"#{ord(c)};" for c in str(value))


def test_escaping_in_one_pass_equals_escaping_per_character() -> None:
    rng = random.Random(15)
    alphabet = [chr(c) for c in range(0, 0x250)] + ["\u2028", "\u2029", "\x85", "é", "日", "😀", "\ud800"]
    samples: list[object] = [HOSTILE, "", "prod-us-east-1", "2.9.4", 1.5, None, True, *alphabet]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(2000)]
    for sample in samples:
        assert markdown_text(sample) == _markdown_text_per_character(sample), repr(sample)
        assert mermaid_escape(sample) == _mermaid_escape_per_character(sample), repr(sample)


def test_override_positions_equal_the_provenance_of_each_written_setting(tmp_path: Path) -> None:
    """The overview's override cells come from the entry's positions, not from each cluster's whole provenance
    (built on first use): for every cluster of the reference fleet and of a synthetic one, the same strings."""
    from generator.bench import make_fleet
    from generator.inventory.loader import load_inventory
    from generator.inventory.resolve import cluster_layer, resolve
    from generator.render.overview import _where, _written_leaves, override_positions

    compared = 0
    for root in (REPO, tmp_path / "synthetic"):
        if root != REPO:
            make_fleet(REPO, root, 40)
        inventory = load_inventory(root)
        fleet = resolve(inventory)
        sources = {s.item.name: s for s in inventory.clusters}
        for cluster in fleet.clusters:
            source = sources[cluster.name]
            expected = [_where(cluster, source, key) for key, _ in _written_leaves(cluster_layer(source).data)]
            assert override_positions(cluster, source) == expected, cluster.name
            compared += len(expected)
    assert compared > 40
