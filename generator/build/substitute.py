"""Offline replica of Flux kustomize-controller's ``spec.postBuild`` variable substitution.

Every rule below was read from the upstream sources, not guessed:

* fluxcd/pkg ``kustomize/kustomize_varsub.go`` (``SubstituteVariables``, ``LoadVariables``,
  ``varSubstitution``): ``substituteFrom`` entries are read in order and later ones overwrite earlier
  ones, inline ``substitute`` overwrites them all; every value loses its ``"\\n"`` characters; a missing
  ConfigMap/Secret fails unless ``optional``; a resource whose *label or annotation*
  ``kustomize.toolkit.fluxcd.io/substitute`` is exactly ``disabled`` is left alone; nothing at all is
  substituted when the variable map is empty (``if len(vars) > 0``); every variable name must match
  ``^[_[:alpha:]][_[:alpha:][:digit:]]*$``; the resource is rendered with ``res.AsYAML()``, expanded with
  envsubst, re-read with ``yaml.YAMLToJSON`` and stored with kyaml ``RNode.UnmarshalJSON``.
* fluxcd/pkg ``envsubst`` (Flux's fork of drone/envsubst): ``parse/scan.go``, ``parse/parse.go``,
  ``template.go`` (strict mode and ``isDefaultOp``), ``funcs.go``, ``eval.go``; drone/envsubst
  ``path/match.go`` (Go's ``path.Match`` where ``*`` and ``?`` also match ``/``). Only ``${...}`` is
  expanded: a bare ``$var`` is plain text, ``$$`` is one literal ``$`` (so ``$${x}`` gives ``${x}``),
  ``${var-default}`` is a parse error ("missing closing brace"), and the default forms
  (``=``, ``:=``, ``:-``, ``:?``, ``:+``) all mean "use the default when the value is empty".
* kustomize ``api/resource/resource.go``: ``AsYAML`` is ``yaml.JSONToYAML(r.MarshalJSON())``;
  sigs.k8s.io/yaml ``JSONToYAML``/``YAMLToJSON`` use go-yaml **v2** (YAML 1.1: ``yes``/``on``/``y`` are
  booleans, ``0777`` is octal), so the text that envsubst sees is go-yaml v2's emitter output
  (``encode.go``, ``emitterc.go``: plain when the string would read back as a string, else single or
  double quotes, ``|`` blocks for multi-line text, lines folded past column 80) and the result is
  read back with go-yaml v2's ``resolve.go`` rules. Quotes written in the source manifest are
  therefore gone: ``replicas: "${n}"`` with ``n=3`` becomes the integer ``3``.
* kyaml ``RNode.UnmarshalJSON`` decodes numbers as float64, and the controller's final ``AsYaml``
  prints integral ones as integers: every number of a substituted resource goes through float64.
* Flux docs, "Post build variable substitution" (kustomize-controller ``docs/spec/v1/kustomizations.md``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from generator.build.envsubst import envsubst, go_string
from generator.build.goyaml import GoYamlError, dump_v2, json_compatible, load_v2, reorder_like, through_float64
from generator.build.model import SubstitutionError, SubstitutionPanic

__all__ = ["SubstitutionError", "collect_variables", "envsubst", "substitute_object"]

VARSUB_REGEX = "^[_[:alpha:]][_[:alpha:][:digit:]]*$"
DISABLE_KEY = "kustomize.toolkit.fluxcd.io/substitute"
DISABLED_VALUE = "disabled"

_VAR_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")  # RE2 [:alpha:]/[:digit:] are ASCII-only


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def _substitution_disabled(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return False
    for field_name in ("labels", "annotations"):
        values = metadata.get(field_name)
        if isinstance(values, Mapping) and values.get(DISABLE_KEY) == DISABLED_VALUE:
            return True
    return False


def substitute_object(
    obj: dict[str, Any],
    variables: Mapping[str, str],
    *,
    strict: bool = False,
    always: bool = False,
) -> dict[str, Any]:
    """Return ``obj`` as kustomize-controller applies it after post-build substitution (a new object).

    Nothing changes when the object is labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute:
    disabled`` or when ``variables`` is empty (set ``always`` to mimic ``substituteStrategy: Always``).
    """
    name = ""
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        name = metadata["name"]
    prefix = f"post build failed for '{name}': "
    try:
        data = json_compatible(obj)  # res.AsYAML() runs (and can fail) before the disabled check
    except SubstitutionError as err:
        raise SubstitutionError(prefix + str(err)) from err
    if _substitution_disabled(obj) or (not variables and not always):
        return copy.deepcopy(obj)
    if not isinstance(data, dict):
        raise SubstitutionError(prefix + "resource is not a mapping")
    for var_name, value in variables.items():
        if not _VAR_NAME.fullmatch(var_name):
            raise SubstitutionError(
                f"{prefix}envsubst error: '{var_name}' var name is invalid, must match '{VARSUB_REGEX}'"
            )
        if not isinstance(value, str):
            raise SubstitutionError(f"{prefix}variable '{var_name}' must be a string, got {type(value).__name__}")
    text = dump_v2(data)
    try:
        output = envsubst(text, variables, strict=strict)
    except SubstitutionPanic as err:
        raise SubstitutionPanic(prefix + str(err), variable=err.variable, expression=err.expression) from err
    except SubstitutionError as err:
        raise SubstitutionError(
            f"{prefix}envsubst error: variable substitution failed: {err}", variable=err.variable
        ) from err
    try:
        result = load_v2(output)
    except GoYamlError as err:
        raise SubstitutionError(f"{prefix}envsubst error: YAMLToJSON: error converting YAML to JSON: {err}") from err
    if not isinstance(result, dict):
        kind = "array" if isinstance(result, list) else "string" if isinstance(result, str) else "value"
        raise SubstitutionError(
            f"{prefix}UnmarshalJSON: json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
        )
    reordered: dict[str, Any] = reorder_like(through_float64(result), data)
    return reordered


def _string_map(source: Any, what: str) -> dict[str, str]:
    if source is None:
        return {}
    if not isinstance(source, Mapping):
        raise SubstitutionError(f"{what} must be a mapping of strings")
    result: dict[str, str] = {}
    for key, value in source.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SubstitutionError(f"{what}.{key}: expected string, got {type(value).__name__}")
        result[key] = value
    return result


def _source_values(kind: str, name: str, found: Mapping[str, Any]) -> dict[str, str]:
    """The ``.data`` of a ConfigMap, or of a Secret as the API server stores it (``stringData`` merged in)."""
    if kind == "ConfigMap":
        return _string_map(found.get("data"), f"ConfigMap/{name} data")
    values: dict[str, str] = {}
    for key, encoded in _string_map(found.get("data"), f"Secret/{name} data").items():
        try:
            values[key] = go_string(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError) as err:
            raise SubstitutionError(f"Secret/{name} data.{key}: illegal base64 data") from err
    values.update(_string_map(found.get("stringData"), f"Secret/{name} stringData"))
    return values


def collect_variables(
    post_build: Mapping[str, Any] | None,
    find_object: Callable[[str, str], Mapping[str, Any] | None],
) -> dict[str, str]:
    """The variables of a Kustomization's ``spec.postBuild``, merged exactly as Flux merges them.

    ``substituteFrom`` entries are applied in order (later keys win), then inline ``substitute`` wins
    over all of them; newlines are removed from every value. ``find_object(kind, name)`` returns the
    ConfigMap or Secret, or None when it is absent (an error unless the reference is ``optional``).
    """
    if not post_build:
        return {}
    variables: dict[str, str] = {}
    references = post_build.get("substituteFrom") or []
    if not isinstance(references, list):
        raise SubstitutionError("unable to get subsituteFrom: spec.postBuild.substituteFrom must be a list")
    for index, reference in enumerate(references):
        if not isinstance(reference, Mapping):
            raise SubstitutionError(
                f"unable to get subsituteFrom: unable to convert patch {index} to map[string]interface{{}}"
            )
        kind, name = reference.get("kind"), reference.get("name")
        if kind not in ("ConfigMap", "Secret"):
            continue  # Flux's switch has no default branch; the CRD only admits these two kinds
        if not isinstance(name, str):
            raise SubstitutionError(f"unable to get subsituteFrom: entry {index} has no name")
        found = find_object(kind, name)
        if found is None:
            if reference.get("optional") is True:
                continue
            raise SubstitutionError(f"substitute from '{kind}/{name}' error: {kind.lower()}s \"{name}\" not found")
        for key, value in _source_values(kind, name, found).items():
            variables[key] = value.replace("\n", "")
    for key, value in _string_map(post_build.get("substitute"), "spec.postBuild.substitute").items():
        variables[key] = value.replace("\n", "")
    return variables
