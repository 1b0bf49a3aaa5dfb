"""Flux's own substitution tests (fluxcd/pkg envsubst v1.7.0 and kustomize v1.35.4, the versions Flux 2.9.4's
kustomize-controller v1.9.4 builds with), vendored in tests/conformance/flux/ and replayed on fleetgen's port;
plus the cases where Flux's Go code panics, which must fail fleetgen's build too."""

from __future__ import annotations

import hashlib
import re

import pytest
import yaml
from conformance import flux_suite
from conformance.flux_suite import Expansion, FuncCall

from generator.build import envsubst as substitute  # the functions of Flux's funcs.go
from generator.build.envsubst import envsubst
from generator.build.model import SubstitutionError, SubstitutionPanic
from generator.build.substitute import collect_variables, substitute_object
from generator.tools import find_tools

TESTDATA = flux_suite.ROOT / "kustomize" / "testdata"
EXPANSIONS = flux_suite.expansions()
CALLS = flux_suite.func_calls()


def test_vendored_files_are_the_pinned_blobs() -> None:
    rows = [line.split("\t") for line in (flux_suite.ROOT / "SOURCES.tsv").read_text().splitlines()]
    files = [row for row in rows if len(row) == 4 and row[0] != "tag"]
    assert {row[0] for row in files} == {"envsubst/v1.7.0", "kustomize/v1.35.4"}
    for _, _, path, blob in files:
        data = (flux_suite.ROOT / path).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, path


def test_the_suite_reads_every_case_of_the_go_tests() -> None:
    text = (flux_suite.ROOT / "envsubst" / "eval_test.go").read_text()
    assert len(EXPANSIONS) == text.count("input:") == 57
    funcs = (flux_suite.ROOT / "envsubst" / "funcs_test.go").read_text()
    assert len(CALLS) == len(re.findall(r"got, want :?= ", funcs)) == 15


@pytest.mark.parametrize("case", EXPANSIONS, ids=[f"{e.test}:{e.input}" for e in EXPANSIONS])
def test_eval_table(case: Expansion) -> None:
    params = case.params or {}
    if case.test == "TestExpand":  # the mapping reports every variable as set
        assert envsubst(case.input, params) == case.output
        return
    assert case.test == "TestExpandStrict"
    if case.want_error:
        assert case.want_error == "errVarNotSet"
        with pytest.raises(SubstitutionError, match=r"variable not set \(strict mode\)"):
            envsubst(case.input, params, strict=True)
    else:
        assert envsubst(case.input, params, strict=True) == case.output


@pytest.mark.parametrize("case", CALLS, ids=[f"{c.function}{tuple(c.args)}" for c in CALLS])
def test_funcs(case: FuncCall) -> None:
    python_name = "_" + "".join("_" + c.lower() if c.isupper() else c for c in case.function)
    function = getattr(substitute, python_name)
    value, *args = case.args
    assert function(value, args) == case.want


def _varsub(
    directory: str, *, always: bool = False, strict: bool = False, novars: bool = False
) -> list[dict[str, object]]:
    """kustomize_varsub_test.go: kustomize build of testdata/<directory>, then SubstituteVariables per resource."""
    (kustomization,) = yaml.safe_load_all((TESTDATA / "kustomization_varsub.yaml").read_text())
    configmap = yaml.safe_load((TESTDATA / "configmap.yaml").read_text())
    if novars:
        kustomization = yaml.safe_load((TESTDATA / "kustomization_varsub_novars.yaml").read_text())

    def find(kind: str, name: str) -> dict[str, object] | None:
        return configmap if (kind, name) == ("ConfigMap", configmap["metadata"]["name"]) else None

    variables = collect_variables(kustomization["spec"].get("postBuild"), find)
    output = find_tools().kustomize_build.run(str(TESTDATA / directory))
    objects = [
        substitute_object(obj, variables, strict=strict, always=always)
        for obj in yaml.safe_load_all(output)
        if obj is not None
    ]
    return sorted(objects, key=lambda o: (str(o["kind"]), str(o["metadata"]["name"])))  # type: ignore[index]


def test_kustomization_varsub_matches_flux_expected_output() -> None:
    expected = [d for d in yaml.safe_load_all((TESTDATA / "kustomization_varsub_expected.yaml").read_text()) if d]
    # the Go test compares resMap.AsYaml() text; documents compared here, in a stable order
    assert _varsub("resources") == sorted(expected, key=lambda o: (o["kind"], o["metadata"]["name"]))


def test_kustomization_varsub_strict() -> None:
    with pytest.raises(SubstitutionError, match="variable not set"):
        _varsub("varsubstrict", strict=True)
    _varsub("varsubstrict", strict=False)


def test_kustomization_varsub_always() -> None:
    (default,) = _varsub("varsubalways", novars=True)
    assert "${cluster_env:=dev}" in yaml.safe_dump(default)
    (always,) = _varsub("varsubalways", always=True, novars=True)
    text = yaml.safe_dump(always)
    assert "${" not in text and "environment: dev" in text and "region: eu-central-1" in text


# --- where Flux's Go code panics -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "bounds"),
    [
        ("${v:1:-2}", "[:-1]"),  # s[1:-1]
        ("${v:0:-1}", "[:-1]"),
        ("${v:3:-1}", "[3:2]"),
        ("${v:-4:-1}", None),  # ":-" is the default operator: no substring at all
    ],
)
def test_negative_substring_length_panics_like_go(template: str, bounds: str | None) -> None:
    if bounds is None:
        assert envsubst(template, {"v": "abcde"}) == "abcde"
        return
    with pytest.raises(SubstitutionPanic) as caught:
        envsubst(template, {"v": "abcde"})
    assert f"slice bounds out of range {bounds}" in str(caught.value) and caught.value.variable == "v"
    assert caught.value.expression == template


def test_negative_length_past_the_end_is_empty_not_a_panic() -> None:
    # funcs.go: pos+length >= len(s) is checked first, so a start beyond the end returns "" even with length < 0
    assert envsubst("${v:20:-2}", {"v": "abcde"}) == ""


def test_panic_fails_the_substitution_naming_the_variable() -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"x": "${v:1:-2}"}}
    with pytest.raises(SubstitutionPanic, match=r"post build failed for 'app': panic: .* \(variable 'v'"):
        substitute_object(config, {"v": "abcde"})


def test_the_failing_expression_is_found_in_its_file() -> None:
    from generator.build.kustomize import _written_in

    files = {"apps/web/config.yaml": "data:\n  x: ${v:1:-2}\n", "apps/web/other.yaml": "x: 1\n"}
    assert _written_in(files, "apps/web", "${v:1:-2}") == " (in apps/web/config.yaml)"
    assert _written_in(files, "apps/other", "${v:1:-2}") == ""
    # the build itself: tests/test_build.py test_a_flux_envsubst_panic_fails_the_build_naming_the_variable_and_the_file
