"""Kyverno's CEL libraries that are pure functions, evaluated offline exactly as Kyverno does.

Sources: github.com/kyverno/sdk (the module Kyverno v1.19.0's go.mod pins, v0.0.0-20260703121625-e0dc6fb8661a):
cel/libs/hash/impl.go (``hash.md5/sha1/sha256``: lowercase hex of the string's bytes), cel/libs/json/impl.go
(``json.unmarshal``), cel/libs/user (``parseServiceAccount`` and ``user.parseServiceAccount``:
``system:serviceaccount:<ns>:<name>`` → ``{Namespace, Name}``, anything else → empty fields). Libraries that need
the network, a registry or cluster state are refused elsewhere (generator/verify/evaluate.py OFFLINE_UNKNOWABLE).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

#: The receiver values of library calls (``hash.md5(x)`` reaches the engine as ``md5(hash, x)``).
RECEIVERS: dict[str, dict[str, str]] = {name: {"__kyverno_library__": name} for name in ("hash", "json", "user")}
_SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def _receiver(expected: str, value: Any, function: str) -> None:
    if value != RECEIVERS[expected]:
        raise TypeError(f"{function}() is {expected}.{function}() in Kyverno's {expected} library")


def _hasher(algorithm: str) -> Callable[..., str]:
    def digest(receiver: Any, value: Any) -> str:
        _receiver("hash", receiver, algorithm)
        if not isinstance(value, str):
            raise TypeError(f"hash.{algorithm}() takes a string, not {type(value).__name__}")
        return hashlib.new(algorithm, value.encode("utf-8")).hexdigest()

    return digest


def unmarshal(receiver: Any, value: Any) -> Any:
    """``json.unmarshal(string)``: the JSON value."""
    _receiver("json", receiver, "unmarshal")
    if not isinstance(value, str):
        raise TypeError(f"json.unmarshal() takes a string, not {type(value).__name__}")
    return json.loads(value)


def parse_service_account(*args: Any) -> dict[str, str]:
    """``parseServiceAccount(username)`` / ``user.parseServiceAccount(username)``."""
    if len(args) == 2:
        _receiver("user", args[0], "parseServiceAccount")
        args = args[1:]
    (username,) = args
    if not isinstance(username, str):
        raise TypeError(f"type conversion error from {type(username).__name__} to 'string'")
    if not username.startswith(_SERVICE_ACCOUNT_PREFIX):
        return {"Namespace": "", "Name": ""}
    namespace, _, name = username.removeprefix(_SERVICE_ACCOUNT_PREFIX).partition(":")
    if not name:
        return {"Namespace": "", "Name": ""}
    return {"Namespace": namespace, "Name": name}


#: CEL function name → implementation.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "md5": _hasher("md5"),
    "sha1": _hasher("sha1"),
    "sha256": _hasher("sha256"),
    "unmarshal": unmarshal,
    "parseServiceAccount": parse_service_account,
}
