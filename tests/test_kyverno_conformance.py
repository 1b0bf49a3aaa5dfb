"""Kyverno v1.19.0's own ValidatingPolicy test cases, replayed on fleetgen's offline evaluator.

The cases are vendored from kyverno/kyverno (tests/conformance/kyverno/, SOURCES.tsv; refreshed by
tests/conformance/extract_kyverno.py when the pin moves) and interpreted by tests/conformance/kyverno_suite.py.
fleetgen must never disagree with Kyverno; every refusal must be a reviewed one (kyverno_refused.tsv).
"""

from __future__ import annotations

import collections
import hashlib
from functools import cache
from pathlib import Path

from conformance import kyverno_suite
from conformance.kyverno_suite import Case

HERE = Path(__file__).parent / "conformance"
#: The agreement reached when the suite was last reviewed; fewer agreements are a regression.
AGREE_AT_LEAST = 241


@cache
def cases() -> tuple[Case, ...]:
    return tuple(kyverno_suite.all_cases())


def reviewed_refusals() -> list[tuple[str, str, str]]:
    rows = []
    for line in (HERE / "kyverno_refused.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            prefix, fragment, why = line.split("\t")
            rows.append((prefix, fragment, why))
    return rows


def test_vendored_files_are_the_pinned_blobs() -> None:
    rows = [line.split("\t") for line in (kyverno_suite.ROOT / "SOURCES.tsv").read_text().splitlines()]
    header = {row[0]: row[1] for row in rows if row[0].startswith("#")}
    assert header["# commit"] == "ee97ce09538b09b6f1b03853cc41a62654d6a58f" and header["# tag"] == "v1.19.0"
    files = [row for row in rows if not row[0].startswith("#") and row != ["path", "blob"]]
    assert len(files) > 400
    for path, blob in files:
        data = (kyverno_suite.ROOT / path).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob, path
    assert {"LICENSE", "NOTICE"} <= {path for path, _ in files}


def test_no_case_disagrees_with_kyverno() -> None:
    disagreements = [f"{c.id}: Kyverno {c.expected}, fleetgen {c.actual}" for c in cases() if c.verdict == "disagree"]
    assert disagreements == []


def test_every_refusal_is_reviewed_and_names_its_cause() -> None:
    reviewed = reviewed_refusals()
    used: set[str] = set()
    unreviewed = []
    for case in cases():
        if case.verdict != "refuse":
            continue
        match = [
            p for p, fragment, _ in reviewed if case.id.split(" ")[0].split("#")[0] == p and fragment in case.refusal
        ]
        if len(match) != 1:
            unreviewed.append(f"{case.id}: {case.refusal.splitlines()[0]}")
        used.update(match)
    assert unreviewed == []
    assert sorted(p for p, _, _ in reviewed if p not in used) == []  # no stale entries


def test_agreement_figure() -> None:
    counts = collections.Counter(c.verdict for c in cases())
    print(
        f"Kyverno v1.19.0 conformance: {counts['agree']} agree, {counts['refuse']} refused, "
        f"{counts['disagree']} disagree of {len(cases())} cases"
    )
    assert counts["agree"] >= AGREE_AT_LEAST
    # both sources contribute: chainsaw admission/API cases and kyverno-test results
    sources = collections.Counter(c.id.split("/")[0] for c in cases() if c.verdict == "agree")
    assert sources["chainsaw"] > 100 and sources["cli"] > 20 and sources["apply"] > 10
