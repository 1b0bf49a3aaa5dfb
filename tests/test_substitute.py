"""Flux post-build substitution: envsubst syntax, variable collection and the YAML round trip.

Expected values follow fluxcd/pkg (kustomize/kustomize_varsub.go, envsubst/) and were checked against
the Go code (envsubst fork + sigs.k8s.io/yaml) on the same inputs.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from typing import Any

import pytest

from generator.build.envsubst import envsubst
from generator.build.model import SubstitutionError
from generator.build.substitute import collect_variables, substitute_object
from generator.errors import FleetgenError


def configmap(data: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", **metadata}, "data": data}


# --- envsubst syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        # := and :- (and =, :?, :+, which the fork treats the same) use the default when unset OR empty
        ("${v:=dflt}", {"v": "set"}, "set"),
        ("${v:=dflt}", {"v": ""}, "dflt"),
        ("${v:=dflt}", {}, "dflt"),
        ("${v:-dflt}", {"v": "set"}, "set"),
        ("${v:-dflt}", {"v": ""}, "dflt"),
        ("${v:-dflt}", {}, "dflt"),
        ("${v=dflt}", {"v": "set"}, "set"),
        ("${v=dflt}", {"v": ""}, "dflt"),
        ("${v=dflt}", {}, "dflt"),
        ("${v:+alt}", {"v": "set"}, "set"),
        ("${v:?msg}", {}, "msg"),
        ("${v:-}", {}, ""),
        ("${v:=a:b c}", {}, "a:b c"),
        ("${v:=${w}-suffix}", {"w": "x"}, "x-suffix"),
        ("${v:=prefix${w} suffix}", {"w": "x"}, "prefixx suffix"),
    ],
)
def test_default_operators(template: str, variables: dict[str, str], expected: str) -> None:
    assert envsubst(template, variables) == expected


def test_dash_default_is_a_parse_error_in_flux() -> None:
    # The fork dropped '-' from identifiers, and parseFunc has no '-' branch: Flux rejects ${v-x}.
    with pytest.raises(SubstitutionError, match="missing closing brace"):
        envsubst("${v-dflt}", {"v": "set"})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$${x}", "${x}"),
        ("$$x", "$x"),
        ("$x and $", "$x and $"),  # bare $var is never substituted
        ("a$$$${x}", "a$${x}"),
        ("$$${x}", "$X"),  # '$$' -> '$', then ${x}
        ("cost: 5$", "cost: 5$"),
        ("${x}$${x}${x}", "X${x}X"),
        ("\\${x}", "\\X"),  # a backslash is not an escape outside ${...}
        ("${x:=$${y}}", "X"),
        ("${z:=$${y}}", "$Y"),  # inside a default '$$' is not an escape
    ],
)
def test_escapes_and_bare_dollars(template: str, expected: str) -> None:
    assert envsubst(template, {"x": "X", "y": "Y"}) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${v^}", "Hello World.tar.gz"),
        ("${v^^}", "HELLO WORLD.TAR.GZ"),
        ("${u,}", "aBC"),
        ("${u,,}", "abc"),
        ("${#v}", "18"),
        ("${#e}", "6"),  # Go len(): bytes of UTF-8, not characters
        ("${v:6}", "World.tar.gz"),
        ("${v:6:5}", "World"),
        ("${v:-6}", "hello World.tar.gz"),  # ':-' is the default operator, not a negative offset
        ("${v: -6}", "hello World.tar.gz"),  # " -6" does not parse as an offset: the value
        # ${v:1:-1} is not bash's "up to one from the end": envsubst v1.7.0 toSubstr panics (test_flux_conformance.py)
        ("${v:100}", ""),
        ("${v:x}", "hello World.tar.gz"),  # unparsable offset returns the value
        ("${v#*.}", "tar.gz"),
        ("${v##*.}", "gz"),
        ("${v%.*}", "hello World.tar"),
        ("${v%%.*}", "hello World"),
        ("${p#*/}", "to/file"),
        ("${p##*/}", "file"),  # '*' also matches '/' in drone's path.Match
        ("${v/o/0}", "hell0 World.tar.gz"),
        ("${v//o/0}", "hell0 W0rld.tar.gz"),
        ("${v/#hello/bye}", "bye World.tar.gz"),
        ("${v/%gz/xz}", "hello World.tar.xz"),
        ("${v/#/pre-}", "pre-hello World.tar.gz"),
        ("${v/%/-post}", "hello World.tar.gz-post"),
        ("${v/ /}", "helloWorld.tar.gz"),
        ("${v/#hello/}", "hello World.tar.gz"),  # prefix/suffix replace need two arguments
        ("${p//\\//-}", "path-to-file"),
        ("${v,^}", "hello World.tar.gz"),  # unknown operator: the plain value
    ],
)
def test_string_functions(template: str, expected: str) -> None:
    variables = {"v": "hello World.tar.gz", "u": "ABC", "e": "héllo", "p": "path/to/file"}
    assert envsubst(template, variables) == expected


def test_undefined_variables_expand_to_empty() -> None:
    assert envsubst("a-${missing}-b-${#missing}", {}) == "a--b-0"


def test_strict_mode_names_the_missing_variable() -> None:
    with pytest.raises(SubstitutionError, match='variable not set \\(strict mode\\): "missing"') as caught:
        envsubst("x: ${present} ${missing}", {"present": "1"}, strict=True)
    assert caught.value.variable == "missing"
    assert isinstance(caught.value, FleetgenError)


@pytest.mark.parametrize("template", ["${m^^}", "${#m}", "${m:0:2}", "${m/a/b}", "${m#x}", "${v:=${m}}"])
def test_strict_mode_rejects_transforms_of_missing_variables(template: str) -> None:
    # Arguments are evaluated first, so a missing variable in an unused default still fails.
    with pytest.raises(SubstitutionError, match='"m"'):
        envsubst(template, {"v": "set"}, strict=True)


@pytest.mark.parametrize("template", ["${m:=d}", "${m:-d}", "${m=d}", "${m:?d}", "${m:+d}"])
def test_strict_mode_accepts_default_operators(template: str) -> None:
    assert envsubst(template, {}, strict=True) == "d"


def test_strict_mode_accepts_defined_empty_variable() -> None:
    assert envsubst("[${e}]", {"e": ""}, strict=True) == "[]"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${", "unable to parse variable name"),
        ("${}", "unable to parse variable name"),
        ("${x", "missing closing brace"),
        ("${x y}", "missing closing brace"),
        ("${x#}", "unable to parse substitution within function"),
        ("${x^^^}", "bad substitution"),
    ],
)
def test_malformed_expressions(template: str, message: str) -> None:
    with pytest.raises(SubstitutionError, match=message):
        envsubst(template, {"x": "v"})


@pytest.mark.parametrize("text", ["", "plain text", "a: b\nc: [1, 2]\n", "{json: true}", "50%", "é ü ß"])
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert envsubst(text, {"x": "y"}, strict=True) == text


def test_nul_character_ends_the_text_like_go() -> None:
    assert envsubst("a${x}\x00b${x}", {"x": "X"}) == "aX"


# --- substitute_object -------------------------------------------------------------------------


def test_substituted_numbers_and_booleans_change_type() -> None:
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"zone": "${zone}"}},
        "spec": {"replicas": "${replicas}", "paused": "${paused}", "minReadySeconds": "${octal}"},
    }
    result = substitute_object(deployment, {"replicas": "3", "paused": "yes", "zone": "eu-1", "octal": "010"})
    assert result["spec"] == {"replicas": 3, "paused": True, "minReadySeconds": 8}  # YAML 1.1 rules
    assert result["metadata"]["labels"] == {"zone": "eu-1"}
    assert deployment["spec"]["replicas"] == "${replicas}"  # the input is not modified


def test_quoting_in_the_manifest_does_not_keep_strings() -> None:
    # Flux re-serialises the resource before substituting, so "${id}" is emitted unquoted.
    result = substitute_object(configmap({"id": "${id}", "leading": "${acct}"}), {"id": "123", "acct": "0999991"})
    assert result["data"] == {"id": 123, "leading": 999991}


def test_documented_ways_to_keep_strings() -> None:
    variables = {"q": '"', "number": "123", "numberStr": "!!str 123", "boolean": "true"}
    obj = configmap({"a": "${q}${number}${q}", "b": "${numberStr}", "c": "${q}${boolean}${q}", "d": "v${number}"})
    assert substitute_object(obj, variables)["data"] == {"a": "123", "b": "123", "c": "true", "d": "v123"}


def test_strings_that_need_quotes_stay_strings() -> None:
    obj = configmap({"flag": "yes", "num": "42", "empty": "", "sentence": "a: ${x}", "hash": "#${x}"})
    assert substitute_object(obj, {"x": "1"})["data"] == {
        "flag": "yes",
        "num": "42",
        "empty": "",
        "sentence": "a: 1",
        "hash": "#1",
    }


def test_empty_substitution_in_plain_context_becomes_null() -> None:
    result = substitute_object(configmap({"region": "${region}", "text": "x ${region}"}), {"other": "1"})
    assert result["data"] == {"region": None, "text": "x"}


def test_values_that_break_the_yaml_fail_like_flux() -> None:
    with pytest.raises(SubstitutionError, match="post build failed for 'app': envsubst error: YAMLToJSON"):
        substitute_object(configmap({"image": "${image}"}), {"image": "repo: tag"})
    # "a: ${x}" is single-quoted by the emitter, so a value with a quote closes the scalar early
    with pytest.raises(SubstitutionError, match="YAMLToJSON"):
        substitute_object(configmap({"s": "a: ${x}"}), {"x": "it's"})


def test_flow_collections_can_be_injected() -> None:
    result = substitute_object(configmap({"list": "${l}", "map": "${m}"}), {"l": "[1, b]", "m": "{k: on}"})
    assert result["data"] == {"list": [1, "b"], "map": {"k": True}}


def test_multiline_strings_keep_escapes_and_backslashes() -> None:
    script = "echo $${HOME} ${user}\nprintf '\\?'\n"
    result = substitute_object(configmap({"run.sh": script}), {"user": "bob"})
    assert result["data"]["run.sh"] == "echo ${HOME} bob\nprintf '\\?'\n"


def test_keys_are_substituted_too() -> None:
    result = substitute_object(configmap({"${key}": "v", "k": "w"}), {"key": "dynamic"})
    assert result["data"] == {"dynamic": "v", "k": "w"}


def test_numbers_go_through_float64() -> None:
    obj = configmap({"x": "${x}"}, annotations={"a": "1"})
    obj["spec"] = {"big": 2**53 + 1, "float": 2.0, "half": 0.5, "million": 1000000}
    result = substitute_object(obj, {"x": "1"})
    assert result["spec"] == {"big": 2**53, "float": 2, "half": 0.5, "million": 1000000}
    assert isinstance(result["spec"]["float"], int)


def test_key_order_of_the_input_is_kept() -> None:
    obj = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "n"}, "data": {"z": "${x}", "a": "b"}}
    result = substitute_object(obj, {"x": "1"})
    assert list(result) == ["kind", "apiVersion", "metadata", "data"]
    assert list(result["data"]) == ["z", "a"]


@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_disabled_label_or_annotation_skips_the_resource(field: str) -> None:
    obj = configmap({"v": "${x}", "n": "${x:=d}"}, **{field: {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}})
    result = substitute_object(obj, {"x": "1"}, strict=True)
    assert result == obj
    assert result is not obj


@pytest.mark.parametrize("value", ["Disabled", "true", "disabled "])
def test_only_the_exact_value_disabled_counts(value: str) -> None:
    obj = configmap({"v": "${x}"}, annotations={"kustomize.toolkit.fluxcd.io/substitute": value})
    assert substitute_object(obj, {"x": "1"})["data"] == {"v": 1}


def test_no_variables_means_no_substitution_at_all() -> None:
    obj = configmap({"env": "${env:=dev}", "escaped": "$${x}"})
    assert substitute_object(obj, {}) == obj
    # substituteStrategy: Always substitutes even without variables.
    assert substitute_object(obj, {}, always=True)["data"] == {"env": "dev", "escaped": "${x}"}


def test_missing_variable_empty_or_strict_error() -> None:
    obj = configmap({"present": "${a}", "missing": "m-${b}", "default": "${c:=test}"})
    assert substitute_object(obj, {"a": "x"})["data"] == {"present": "x", "missing": "m-", "default": "test"}
    with pytest.raises(SubstitutionError) as caught:
        substitute_object(obj, {"a": "x"}, strict=True)
    assert str(caught.value) == (
        "post build failed for 'app': envsubst error: variable substitution failed: "
        'variable not set (strict mode): "b"'
    )
    assert caught.value.variable == "b"


def test_invalid_variable_name_is_an_error_even_when_unused() -> None:
    with pytest.raises(SubstitutionError) as caught:
        substitute_object(configmap({"v": "${ok}"}), {"ok": "1", "my-key": "2"})
    assert str(caught.value) == (
        "post build failed for 'app': envsubst error: 'my-key' var name is invalid, "
        "must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'"
    )


def test_invalid_name_is_ignored_for_disabled_resources() -> None:
    obj = configmap({"v": "${ok}"}, labels={"kustomize.toolkit.fluxcd.io/substitute": "disabled"})
    assert substitute_object(obj, {"bad.name": "1"}) == obj


def test_parse_errors_are_reported_with_flux_prefix() -> None:
    with pytest.raises(SubstitutionError, match="variable substitution failed: missing closing brace"):
        substitute_object(configmap({"v": "${x-default}"}), {"x": "1"})


# --- collect_variables ---------------------------------------------------------------------------


def secret(data: Mapping[str, str] | None = None, string_data: Mapping[str, str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    if data is not None:
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    if string_data is not None:
        obj["stringData"] = dict(string_data)
    return obj


def finder(objects: dict[tuple[str, str], dict[str, Any]]) -> Any:
    return lambda kind, name: objects.get((kind, name))


def test_precedence_inline_over_sources_and_later_sources_over_earlier() -> None:
    objects = {
        ("ConfigMap", "first"): configmap({"a": "cm1", "b": "cm1", "c": "cm1"}),
        ("Secret", "second"): secret({"b": "secret", "c": "secret"}),
        ("ConfigMap", "third"): configmap({"c": "cm3"}),
    }
    post_build = {
        "substitute": {"a": "inline"},
        "substituteFrom": [
            {"kind": "ConfigMap", "name": "first"},
            {"kind": "Secret", "name": "second"},
            {"kind": "ConfigMap", "name": "third"},
        ],
    }
    assert collect_variables(post_build, finder(objects)) == {"a": "inline", "b": "secret", "c": "cm3"}


def test_secret_data_is_base64_decoded_and_string_data_wins() -> None:
    objects = {("Secret", "s"): secret({"token": "t0ken", "zone": "a"}, {"zone": "b"})}
    post_build = {"substituteFrom": [{"kind": "Secret", "name": "s"}]}
    assert collect_variables(post_build, finder(objects)) == {"token": "t0ken", "zone": "b"}


def test_invalid_base64_in_secret_is_an_error() -> None:
    objects = {("Secret", "s"): {"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}}}
    with pytest.raises(SubstitutionError, match="Secret/s"):
        collect_variables({"substituteFrom": [{"kind": "Secret", "name": "s"}]}, finder(objects))


def test_newlines_are_removed_from_every_value() -> None:
    objects = {("ConfigMap", "cm"): configmap({"zone": "\naz-1a\n"}), ("Secret", "s"): secret({"key": "a\nb\n"})}
    post_build = {
        "substitute": {"inline": "x\ny\r\n"},
        "substituteFrom": [{"kind": "ConfigMap", "name": "cm"}, {"kind": "Secret", "name": "s"}],
    }
    assert collect_variables(post_build, finder(objects)) == {"zone": "az-1a", "key": "ab", "inline": "xy\r"}


def test_optional_missing_source_is_skipped() -> None:
    post_build = {
        "substitute": {"enabled": "true"},
        "substituteFrom": [
            {"kind": "ConfigMap", "name": "absent", "optional": True},
            {"kind": "Secret", "name": "absent-too", "optional": True},
        ],
    }
    assert collect_variables(post_build, finder({})) == {"enabled": "true"}


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("ConfigMap", "substitute from 'ConfigMap/absent' error: configmaps \"absent\" not found"),
        ("Secret", "substitute from 'Secret/absent' error: secrets \"absent\" not found"),
    ],
)
def test_missing_required_source_is_an_error(kind: str, message: str) -> None:
    with pytest.raises(SubstitutionError) as caught:
        collect_variables({"substituteFrom": [{"kind": kind, "name": "absent", "optional": False}]}, finder({}))
    assert str(caught.value) == message


def test_no_post_build_means_no_variables() -> None:
    assert collect_variables(None, finder({})) == {}
    assert collect_variables({}, finder({})) == {}


def test_inline_values_must_be_strings() -> None:
    with pytest.raises(SubstitutionError, match=r"spec\.postBuild\.substitute\.replicas"):
        collect_variables({"substitute": {"replicas": 3}}, finder({}))


def test_end_to_end_like_the_flux_controller_test() -> None:
    # kustomize-controller internal/controller/kustomization_varsub_test.go, TestKustomizationReconciler_Varsub
    objects = {
        ("ConfigMap", "vars"): configmap({"zone": "\naz-1a\n"}),
        ("Secret", "secret-vars"): secret(string_data={"zone": "\naz-1b\n"}),
    }
    post_build = {
        "substitute": {"_Region": "eu-central-1"},
        "substituteFrom": [{"kind": "ConfigMap", "name": "vars"}, {"kind": "Secret", "name": "secret-vars"}],
    }
    variables = collect_variables(post_build, finder(objects))
    service_account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "sa", "labels": {"environment": "${env:=dev}", "region": "${_Region}", "zone": "${zone}"}},
    }
    result = substitute_object(copy.deepcopy(service_account), variables, strict=True)
    assert result["metadata"]["labels"] == {"environment": "dev", "region": "eu-central-1", "zone": "az-1b"}
