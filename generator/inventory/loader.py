"""Load: read ``inventory/`` and ``overlays/`` with positions, validate every item, check cross-field rules.

The result is an ``Inventory``: validated models plus, for every item, the file and path it came from,
so that resolve can record provenance and every error can say ``file:line:col: field: message``.
"""

from __future__ import annotations

import datetime
import difflib
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from generator.errors import InventoryError, InventoryWarning, Problem
from generator.fastload import collector_paused
from generator.guard import read_text, walk_files
from generator.inventory.checks import check_names, cross_check
from generator.inventory.entries import LAYERED, LIST_SECTIONS, SECTIONS, Inventory, Layer, Sourced, T
from generator.inventory.loadcache import LoadCache
from generator.inventory.models import Defaults, Fleet, Settings
from generator.yamlsource import LoadedFile, Path_

"""Models whose raw keys are layered by resolve: only their camelCase keys are accepted."""
_PATTERN_HINTS = {
    "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$": (
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter "
        "or digit (so it is a safe file and object name)"
    ),
}


# --- pydantic errors → problems with positions --------------------------------------------------------


def _model_at(model: type[BaseModel], loc: Iterable[str | int]) -> type[BaseModel] | None:
    """The model class that owns the last key of ``loc`` (for did-you-mean suggestions)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or name: f for name, f in current.model_fields.items()}
            if not isinstance(part, str) or part not in fields:
                return None
            current = fields[part].annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return None
        while get_origin(current) is not None and get_origin(current) not in (list, dict):
            args = [a for a in get_args(current) if a is not type(None)]
            current = args[0] if args else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string"


def _shown(value: Any) -> str:
    """A value as YAML would print it: ``1.3``, ``true``, ``null``, ``'text'``."""
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, dict | list):
        return "{...}" if isinstance(value, dict) else "[...]"
    return repr(value)


def _read_as(error: dict[str, Any], literal: str | None) -> str:
    """What was read, for a type error: ``read 1.3 (a number, written 1.30); quote it: "1.30"``."""
    value = error["input"]
    written = f", written {literal}" if literal and literal != _shown(value) else ""
    read = f"read {_shown(value)} ({_kind(value)}{written})"
    if error["type"] == "string_type" and (isinstance(value, int | float) or value is None):
        return f"{read}; quote it: \"{literal or _shown(value)}\""
    return read


def _message(model: type[BaseModel], error: dict[str, Any], literal: str | None = None) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        known = sorted(f.alias or n for n, f in owner.model_fields.items()) if owner else []
        camel = to_camel(str(loc[-1]))
        close = [camel] if camel in known else difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; expected one of: {', '.join(known)}" if known else "")
        return f"unknown key '{loc[-1]}'{hint}"
    if error["type"] == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return f"{error['input']!r} {_PATTERN_HINTS.get(pattern, f'does not match {pattern}')}"
    if error["type"] == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"].startswith("literal"):
        return f"{message} (got {error['input']!r})"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, {_read_as(error, literal)}"
    if error["type"].endswith(("_type", "_parsing")) and "input" in error:
        expected = message.removeprefix("Input should be ")
        expected = re.sub(r"^a valid (?=[aeiou])", "an ", re.sub(r"^a valid (?![aeiou])", "a ", expected))
        return f"expected {expected}, {_read_as(error, literal)}"
    return message


def validate_item(model: type[T], data: Any, file: LoadedFile, path: Path_, problems: list[Problem]) -> T | None:
    """Validate one item; on failure add one problem per pydantic error, each with file:line:col.

    Layered settings (``defaults``, overlays, clusters) are merged as written, by their camelCase keys, so there
    a snake_case field name (``kubernetes_version``) is an unknown key with a did-you-mean, not a crash later.
    """
    try:
        return model.model_validate(data, by_alias=True, by_name=not issubclass(model, LAYERED))
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            position = file.position((*path, *loc))
            dotted = ".".join(str(p) for p in (*path, *loc))
            literal = file.literals.get((*path, *loc))
            problems.append(
                Problem(position.file, position.line, position.column, dotted, _message(model, dict(error), literal))
            )
        return None


def ambiguous_booleans(file: LoadedFile) -> list[Problem]:
    """Unquoted ``on``/``off``/``yes``/``no``/``y``/``n``: YAML 1.1 readers (Kubernetes, Helm) take them for
    booleans, fleetgen's YAML 1.2 reader for strings; the inventory must say which it means."""
    problems = []
    for path in file.ambiguous:
        position = file.position(path)
        value = file.data
        for part in path:
            value = value[part]
        meaning = "true" if str(value).lower() in {"y", "yes", "on"} else "false"
        problems.append(
            Problem(
                position.file,
                position.line,
                position.column,
                ".".join(str(p) for p in path),
                f"read {value} unquoted: YAML 1.1 readers (Kubernetes, Helm) take it for the boolean {meaning}, "
                f"YAML 1.2 for a string; write {meaning} for the boolean or quote it: \"{value}\"",
            )
        )
    return problems


# --- loading --------------------------------------------------------------------------------------------


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def load_inventory(
    root: Path, *, today: datetime.date | None = None, load_cache: LoadCache | None = None
) -> Inventory:
    """Read and validate the fleet at ``root`` (``inventory/`` and ``overlays/``); raise InventoryError.

    Stages, as the README documents: ``load_entries`` reads every file through the input guard and checks
    every entry and overlay against its schema; only when all pass does ``check_names`` look for duplicate
    names, and only when names are unique does ``cross_check`` run the rules across entries, so one mistake
    gives one message. ``today`` (default: the current date) decides which policy
    exceptions have expired. With ``load_cache`` the files are read through it (``loadcache``: the same result,
    parsing only what changed); the caller stores it (``load_cache.store()``) once its own work succeeded.
    """
    with collector_paused():  # the loaded tree and the checks' objects are acyclic: nothing for it to find
        inventory = load_entries(root, load_cache)
        problems = check_names(inventory) or cross_check(inventory, today=today)
    if problems:
        raise InventoryError(problems)
    for warning in sorted(inventory.warnings, key=lambda p: (p.file, p.line, p.column, p.message)):
        warnings.warn(InventoryWarning(str(warning)), stacklevel=2)
    return inventory


def _read_files(
    folder: Path, root: Path, problems: list[Problem], load_cache: LoadCache, *, recursive: bool = True
) -> list[LoadedFile]:
    """Every YAML file in (or below) ``folder``, through the input guard (problems collected, not raised)."""
    paths, refused = walk_files(folder, root, (".yaml", ".yml"), recursive=recursive)
    problems.extend(refused)
    loaded: list[LoadedFile] = []
    for path in paths:
        display = _relative(path, root)
        try:
            file = load_cache.load(read_text(path, root, display), display)
        except InventoryError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(ambiguous_booleans(file))
        loaded.append(file)
    return loaded


def load_entries(root: Path, load_cache: LoadCache | None = None) -> Inventory:
    """Stage 1: read every inventory and overlay file (through ``load_cache`` if given; nothing is stored here)
    and validate each entry against its schema; raise InventoryError with every problem found, before any rule
    across entries runs."""
    root = root.resolve()
    load_cache = load_cache or LoadCache(None)
    inventory_dir, overlay_dir = root / "inventory", root / "overlays"
    problems: list[Problem] = []
    if not inventory_dir.is_dir():
        raise InventoryError([Problem(_relative(inventory_dir, root), 0, 0, "", "no inventory/ folder here")])
    loaded = _read_files(inventory_dir, root, problems, load_cache)

    fleet_items: list[Sourced[Fleet]] = []
    defaults: list[Layer] = []
    groups: dict[str, list[Any]] = {name: [] for name in LIST_SECTIONS}
    for file in loaded:
        if file.data is None:
            continue
        if not isinstance(file.data, dict):
            problems.append(Problem(file.file, 1, 1, "", f"expected a mapping of sections, read {_kind(file.data)}"))
            continue
        for key, value in file.data.items():
            model = SECTIONS.get(key)
            if model is None:
                close = difflib.get_close_matches(key, SECTIONS, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(SECTIONS)}"
                pos = file.position((key,))
                problems.append(Problem(file.file, pos.line, pos.column, key, f"unknown section; {hint}"))
                continue
            if key == "fleet":
                fleet = validate_item(Fleet, value, file, ("fleet",), problems)
                if fleet:
                    fleet_items.append(Sourced(fleet, file, ("fleet",), value))
            elif key == "defaults":
                if validate_item(Defaults, value, file, ("defaults",), problems) is not None:
                    defaults.append(Layer("fleet defaults", value, file, ("defaults",)))
            elif not isinstance(value, list):
                pos = file.position((key,))
                problems.append(
                    Problem(file.file, pos.line, pos.column, key, f"expected a list of entries, read {_kind(value)}")
                )
            else:
                for index, entry in enumerate(value):
                    item = validate_item(model, entry, file, (key, index), problems)
                    if item is not None:
                        groups[key].append(Sourced(item, file, (key, index), entry))

    if len(fleet_items) != 1 and not problems:
        where = fleet_items[1].where() if len(fleet_items) > 1 else ("inventory/", 0, 0)
        problems.append(
            Problem(
                where[0], where[1], where[2], "fleet", "exactly one 'fleet' section is required across inventory files"
            )
        )
    if len(defaults) > 1:
        layer = defaults[1]
        assert layer.file is not None
        pos = layer.file.position(layer.path)
        problems.append(Problem(pos.file, pos.line, pos.column, "defaults", "'defaults' is given more than once"))

    overlays: dict[str, Layer] = {}
    for file in _read_files(overlay_dir, root, problems, load_cache, recursive=False):
        data = file.data if file.data is not None else {}
        if validate_item(Settings, data, file, (), problems) is not None:
            overlays[Path(file.file).stem] = Layer(f"overlays/{Path(file.file).name}", data, file)
    if problems:
        raise InventoryError(problems)

    return Inventory(
        root=root,
        fleet=fleet_items[0],
        defaults=defaults[0] if defaults else Layer("fleet defaults", {}, None),
        overlays=overlays,
        components=sorted(groups["components"], key=lambda s: s.item.name),
        clusters=sorted(groups["clusters"], key=lambda s: s.item.name),
        apps=sorted(groups["apps"], key=lambda s: s.item.name),
        teams=sorted(groups["teams"], key=lambda s: s.item.name),
        exceptions=sorted(groups["exceptions"], key=lambda s: s.item.name),
    )
