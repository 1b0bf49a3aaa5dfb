"""Keep the copier answers and the inventory one truth after `copier update` (see _migrations in copier.yml).

The inventory is the truth. The per-environment and per-cloud files (overlays/<env>.yaml,
inventory/clusters/<cloud>.yaml) are created once, by `copier copy`, and an update never renders them again
(`_exclude` in copier.yml), so an environment or cloud the organisation removed stays removed. This script,
run after every update with copier's interpreter from the scaffold's root:

1. adds what the update's answers add (`copier update --data 'environments=[dev, qa, prod]'`, a new cloud):
   the environment goes into `fleet.environments` (in promotion order) with its overlays/<env>.yaml and one
   workload cluster per cloud (inventory/clusters/<cloud>-<env>.yaml); a new cloud gets
   inventory/clusters/<cloud>.yaml with one cluster per environment. "Added" means: in the new answers, not
   in the answers of the last commit (`git show HEAD:.copier-answers.yml`), and not in the inventory.
   The files come from the template's own macros (.copier/macros.jinja), exactly as `copier copy` writes them;
2. rewrites `environments` and `clouds` in .copier-answers.yml to what the inventory holds, so the next
   update starts from the inventory, not from stale answers.

Edits are textual (comments and layout of the user's files are kept). Needs only copier's own dependencies
(PyYAML, Jinja2).

    python reconcile_inventory.py --template TEMPLATE_ROOT [--root DIR] [--answers .copier-answers.yml]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import yaml

ENV_ORDER = ("sandbox", "dev", "test", "qa", "staging", "preprod", "prod")
CLOUD_ORDER = ("aws", "gcp", "azure")


class ReconcileError(Exception):
    """The inventory cannot be reconciled automatically (the message says what to do)."""


def inventory_files(root: Path) -> list[Path]:
    """Every YAML file of the inventory."""
    return [p for p in sorted((root / "inventory").rglob("*")) if p.suffix in {".yaml", ".yml"} and p.is_file()]


def _mapping_value(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def find_environments(root: Path) -> tuple[Path, yaml.SequenceNode] | None:
    """The file and node of `fleet.environments`."""
    for path in inventory_files(root):
        for document in yaml.compose_all(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader):
            found = _mapping_value(_mapping_value(document, "fleet") or yaml.MappingNode("", []), "environments")
            if isinstance(found, yaml.SequenceNode):
                return path, found
    return None


def inventory_clouds(root: Path) -> list[str]:
    """The clouds the inventory's clusters run on, in the template's order."""
    clouds: set[str] = set()
    for path in inventory_files(root):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            clusters = document.get("clusters") if isinstance(document, dict) else None
            for cluster in clusters if isinstance(clusters, list) else []:
                if isinstance(cluster, dict) and isinstance(cluster.get("cloud"), str):
                    clouds.add(cluster["cloud"])
    return sorted(clouds, key=lambda c: (CLOUD_ORDER.index(c) if c in CLOUD_ORDER else len(CLOUD_ORDER), c))


def find_fleet_key(root: Path, key: str) -> tuple[Path, yaml.Node] | None:
    """The file and node of `fleet.<key>`."""
    for path in inventory_files(root):
        for document in yaml.compose_all(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader):
            found = _mapping_value(_mapping_value(document, "fleet") or yaml.MappingNode("", []), key)
            if found is not None:
                return path, found
    return None


def add_dns_entry(root: Path, m: Any, cloud: str, answers: dict[str, Any], changes: list[str]) -> None:
    """Add `fleet.dns.<cloud>` (the certificates' DNS-01 identity) from the answers, as `copier copy` writes it;
    say what to add by hand when the answers lack it or `fleet.dns` is not a block mapping."""
    entry = str(m.dns_entry(cloud, *(answers.get(key) for key in (
        "aws_account_id", "gcp_project", "azure_subscription_id", "azure_dns_resource_group",
        "azure_dns_client_id")))).strip()
    located = find_fleet_key(root, "dns")
    if located is not None and _mapping_value(located[1], cloud) is not None:
        return
    if not entry or located is None or not isinstance(located[1], yaml.MappingNode) or located[1].flow_style \
            or not located[1].value:
        changes.append(f"note: add fleet.dns.{cloud} (README \"App hosts, TLS and DNS\") before an app with a host "
                       f"runs on {cloud}")
        return
    path, node = located
    text = path.read_text(encoding="utf-8")
    column = node.value[0][0].start_mark.column
    line_end = text.find("\n", node.value[-1][1].end_mark.index)
    at = len(text) if line_end == -1 else line_end + 1
    text = text[:at] + ("" if line_end != -1 else "\n") + " " * column + entry + "\n" + text[at:]
    path.write_text(text, encoding="utf-8")
    changes.append(f"added fleet.dns.{cloud} to {path.relative_to(root)}")


def _rank(env: str) -> int:
    return ENV_ORDER.index(env) if env in ENV_ORDER else len(ENV_ORDER)


def _position(env: str, current: list[str]) -> int:
    """Where ``env`` goes in a promotion order: before the first environment that follows it in ENV_ORDER."""
    for index, existing in enumerate(current):
        if existing in ENV_ORDER and _rank(existing) > _rank(env):
            return index
    return len(current)


def add_environments(text: str, node: yaml.SequenceNode, added: list[str]) -> tuple[str, list[str]]:
    """Insert environments into the `fleet.environments` sequence of ``text``; return text and the new list."""
    current = [str(item.value) for item in node.value if isinstance(item, yaml.ScalarNode)]
    if node.flow_style or not node.value:
        for env in added:
            current.insert(_position(env, current), env)
        return text[: node.start_mark.index] + "[" + ", ".join(current) + "]" + text[node.end_mark.index :], current
    # a block sequence: insert `- env` lines at the same indentation, from the end so offsets stay valid
    column = node.value[0].start_mark.column - 2
    original = list(current)
    inserts: list[tuple[int, int, str]] = []
    for env in added:
        current.insert(_position(env, current), env)
        before = _position(env, original)  # the original item it goes before (or after the last one)
        if before < len(node.value):
            index = node.value[before].start_mark.index - 2  # the '- ' of that item
            inserts.append((index, _rank(env), f"- {env}\n" + " " * column))
            continue
        line_end = text.find("\n", node.value[-1].end_mark.index)  # a trailing comment stays on its line
        if line_end == -1:
            inserts.append((len(text), _rank(env), "\n" + " " * column + f"- {env}"))
        else:
            inserts.append((line_end + 1, _rank(env), " " * column + f"- {env}\n"))
    for index, _, snippet in sorted(inserts, reverse=True):  # at one place: the later environment first
        text = text[:index] + snippet + text[index:]
    return text, current


def macros(template: Path) -> Any:
    """The template's .copier/macros.jinja, with copier.yml's Jinja settings."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("template/.copier/macros.jinja").module


def overlay_text(m: Any, env: str) -> str:
    """overlays/<env>.yaml as `copier copy` writes it."""
    return str(m.overlay(env)).strip() + "\n"


def clusters_text(m: Any, cloud: str, region: str, environments: list[str], why: str) -> str:
    """A clusters file with one workload cluster per environment, as `copier copy` writes it."""
    return f"# {why}\n" + str(m.workload_clusters(cloud, region, environments)).strip() + "\n"


def load_answers(text: str | None) -> dict[str, Any]:
    """Parse an answers file (empty when there is none)."""
    data = yaml.safe_load(text) if text else None
    return data if isinstance(data, dict) else {}


def head_answers(root: Path, answers: str) -> dict[str, Any]:
    """The answers of the last commit, before this update."""
    done = subprocess.run(["git", "show", f"HEAD:./{answers}"], cwd=root, capture_output=True, text=True, check=False)
    return load_answers(done.stdout if done.returncode == 0 else None)


def _write_new(path: Path, text: str, changes: list[str], root: Path) -> None:
    if path.exists():
        changes.append(f"kept {path.relative_to(root).as_posix()} (already there)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    changes.append(f"created {path.relative_to(root).as_posix()}")


def reconcile(root: Path, template: Path, answers_name: str = ".copier-answers.yml") -> list[str]:
    """Add what the new answers add to the inventory, then make the answers say what the inventory holds."""
    answers_path = root / answers_name
    new = load_answers(answers_path.read_text(encoding="utf-8") if answers_path.is_file() else None)
    old = head_answers(root, answers_name)
    located = find_environments(root)
    if located is None:
        raise ReconcileError("no fleet.environments in inventory/: environments were not reconciled")
    env_file, env_node = located
    environments = [str(i.value) for i in env_node.value if isinstance(i, yaml.ScalarNode)]
    clouds = inventory_clouds(root)
    changes: list[str] = []
    m = macros(template)

    added_envs = [e for e in new.get("environments") or [] if e not in (old.get("environments") or [])]
    added_envs = [e for e in added_envs if e not in environments]
    added_clouds = [c for c in new.get("clouds") or [] if c not in (old.get("clouds") or []) and c not in clouds]
    if added_envs:
        text, environments = add_environments(env_file.read_text(encoding="utf-8"), env_node, added_envs)
        env_file.write_text(text, encoding="utf-8")
        changes.append(f"added {', '.join(added_envs)} to fleet.environments in {env_file.relative_to(root)}")
        for env in added_envs:
            _write_new(root / "overlays" / f"{env}.yaml", overlay_text(m, env), changes, root)
            for cloud in clouds:
                region = new.get(f"{cloud}_region")
                if cloud in (new.get("clouds") or []) and region:
                    why = f"The {env} cluster on {cloud}, added by `copier update` with the {env} environment."
                    path = root / "inventory" / "clusters" / f"{cloud}-{env}.yaml"
                    _write_new(path, clusters_text(m, cloud, str(region), [env], why), changes, root)
    for cloud in added_clouds:
        region = new.get(f"{cloud}_region")
        if not region:
            raise ReconcileError(f"cloud {cloud} was added without {cloud}_region: add its clusters by hand")
        why = f"Workload clusters on {cloud}, added by `copier update`: one per environment."
        path = root / "inventory" / "clusters" / f"{cloud}.yaml"
        _write_new(path, clusters_text(m, cloud, str(region), environments, why), changes, root)
        clouds = sorted({*clouds, cloud}, key=CLOUD_ORDER.index)
        add_dns_entry(root, m, cloud, new, changes)
        changes.append(f"note: fleet.crossplane and fleet.security.secrets may need {cloud}'s identities")

    # the answers follow the inventory (choices copier knows only; a hand-made environment stays inventory-only)
    synced = {
        "environments": [e for e in environments if e in ENV_ORDER],
        "clouds": [c for c in clouds if c in CLOUD_ORDER],
    }
    if answers_path.is_file() and any(new.get(k) != v for k, v in synced.items()):
        header = "# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY\n"
        new.update(synced)
        answers_path.write_text(header + yaml.safe_dump(new, default_flow_style=False, sort_keys=False))
        changes.append(f"{answers_name}: environments {synced['environments']}, clouds {synced['clouds']}")
    return changes


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--template TEMPLATE_ROOT [--root DIR] [--answers FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, required=True, help="the template checkout (holds copier.yml)")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--answers", default=".copier-answers.yml")
    args = parser.parse_args(argv)
    try:
        changes = reconcile(args.root.resolve(), args.template, args.answers)
    except (ReconcileError, yaml.YAMLError) as exc:
        print(f"warning: answers and inventory not reconciled: {exc}", file=sys.stderr)
        return 0
    for change in changes:
        print(f"reconciled: {change}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
