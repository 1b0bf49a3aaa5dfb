"""Secret scan of rendered and built output: secrets must never appear, only references.

Three kinds of evidence, each reported without the value itself (a short, masked preview only):

- well-known credential formats anywhere in the text: PEM private keys, AWS access key ids, GitHub,
  GitLab, Slack, Stripe and Google API tokens, Slack webhook URLs, JSON web tokens;
- ``Secret`` objects whose ``data`` (base64-decoded) or ``stringData`` hold a high-entropy value or one of
  the formats above (values redacted by the build are skipped: their source is scanned where it is written);
- literal values of credential-named fields (``password``, ``token``, ``clientSecret``, ... and env vars
  such as ``DB_PASSWORD``) that look like secrets rather than references.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from generator.build.model import REDACTED

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("Slack webhook URL", re.compile(r"https://hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+")),
    ("Stripe secret key", re.compile(r"\b[sr]k_live_[A-Za-z0-9]{20,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
)
#: Field and env var names whose literal values are credentials (compared without '-', '_' and case).
CREDENTIAL_NAMES = re.compile(
    r"(password|passwd|passphrase|secret|secretkey|token|apikey|accesskey|privatekey|clientsecret|credentials?)$"
)
#: Field names that hold references to secrets, not secrets.
REFERENCE_NAMES = re.compile(r"(ref|name|names|path|file|keys|selector|existingsecret)$")
#: API groups whose objects hold references to secrets by design (ExternalSecret ``secretKey`` ...).
REFERENCE_GROUPS = ("external-secrets.io", "generators.external-secrets.io")
MIN_ENTROPY_LENGTH = 16
ENTROPY_BITS = 3.5


@dataclass(frozen=True)
class SecretFinding:
    """Something that looks like a secret at a place in the output."""

    where: str
    rule: str
    preview: str

    def __str__(self) -> str:
        return f"{self.where}: {self.rule} ({self.preview})"


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def mask(value: str) -> str:
    """A preview that does not reveal the value: its first 4 characters and its length."""
    shown = value[:4].replace("\n", " ")
    return f"{shown}… {len(value)} chars"


def looks_secret(value: str) -> bool:
    """A long, random-looking value (no spaces, high entropy) that is not a reference or an obvious non-secret."""
    value = value.strip()
    if len(value) < MIN_ENTROPY_LENGTH or any(c.isspace() for c in value):
        return False
    if "${" in value or value.startswith(("http://", "https://", "/", "./", "sha256:")) or value.count("/") > 2:
        return False
    return entropy(value) >= ENTROPY_BITS


def scan_text(text: str, where: str) -> list[SecretFinding]:
    """Known credential formats in a text."""
    return [
        SecretFinding(where, rule, mask(match.group(0)))
        for rule, pattern in PATTERNS
        for match in pattern.finditer(text)
    ]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]", "", name).lower()


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """(path, field name, string value) of every string leaf (env entries yield their var name)."""
    if isinstance(value, Mapping):
        if isinstance(value.get("name"), str) and isinstance(value.get("value"), str):
            yield f"{path}[{value['name']}]", value["name"], value["value"]
        for key, child in value.items():
            if isinstance(child, str):
                yield f"{path}.{key}", str(key), child
            else:
                yield from _walk(child, f"{path}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, f"{path}[{index}]")


def scan_object(obj: Mapping[str, Any], where: str) -> list[SecretFinding]:
    """Secret data with secret-looking values, and credential-named fields with literal secret values."""
    findings: list[SecretFinding] = []
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1":
        for key in ("data", "stringData"):
            values = obj.get(key)
            if not isinstance(values, Mapping):
                continue
            for name, raw in values.items():
                if not isinstance(raw, str) or raw == REDACTED:
                    continue
                text = raw
                if key == "data":
                    try:
                        text = base64.b64decode(raw, validate=True).decode("utf-8", errors="replace")
                    except (binascii.Error, ValueError):
                        text = raw
                at = f"{where} {key}.{name}"
                known = scan_text(text, at) if key == "data" else []  # stringData is in the scanned text
                findings.extend(known)
                if not known and not scan_text(text, at) and looks_secret(text):
                    findings.append(SecretFinding(at, "high-entropy value in a Secret", mask(text)))
        return findings
    if str(obj.get("apiVersion", "")).rpartition("/")[0] in REFERENCE_GROUPS:
        return findings
    for path, name, value in _walk({k: v for k, v in obj.items() if k != "metadata"}, ""):
        normal = _normal(name)
        if CREDENTIAL_NAMES.search(normal) and not REFERENCE_NAMES.search(normal) and looks_secret(value):
            findings.append(SecretFinding(f"{where} {path.lstrip('.')}", f"literal value of {name!r}", mask(value)))
    return findings


def scan(items: Iterable[tuple[str, str, Iterable[Mapping[str, Any]]]]) -> list[SecretFinding]:
    """Scan ``(where, text, objects)`` triples; findings deduplicated and sorted."""
    found: set[SecretFinding] = set()
    for where, text, objects in items:
        found.update(scan_text(text, where))
        for obj in objects:
            meta = obj.get("metadata") or {}
            label = (
                f"{where} {obj.get('kind')}/{meta.get('name')}" if where else f"{obj.get('kind')}/{meta.get('name')}"
            )
            found.update(scan_object(obj, label))
    return sorted(found, key=lambda f: (f.where, f.rule, f.preview))
