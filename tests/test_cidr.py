"""CIDR blocks as integer spans read exactly as ``ipaddress`` reads them, and the interval sweep finds exactly the
overlapping pairs the pairwise comparison finds (random CIDR sets)."""

from __future__ import annotations

import ipaddress
import itertools
import random

import pytest

from generator.inventory import cidr
from generator.inventory.cidr import Block, block, overlapping_pairs
from generator.inventory.models import _cidr


def _random_blocks(rng: random.Random, count: int) -> list[tuple[ipaddress.IPv4Network, int]]:
    blocks = []
    for tag in range(count):
        prefix = rng.randint(8, 24)
        address = rng.getrandbits(32) & ~((1 << (32 - prefix)) - 1) & 0x0FFFFFFF  # a crowded corner: many overlaps
        blocks.append((ipaddress.IPv4Network((address, prefix)), tag))
    return blocks


@pytest.mark.parametrize("seed", range(40))
def test_sweep_equals_pairwise(seed: int) -> None:
    rng = random.Random(seed)
    blocks = _random_blocks(rng, rng.randint(0, 60))
    blocks += rng.sample(blocks, k=min(5, len(blocks)))  # exact duplicates too
    blocks = [(net, tag) for tag, (net, _) in enumerate(blocks)]
    expected = {(a, b) for (na, a), (nb, b) in itertools.combinations(blocks, 2) if na.overlaps(nb)}
    found = list(overlapping_pairs((block(str(net)), tag) for net, tag in blocks))
    assert len(found) == len(set(found)), "a pair reported twice"
    assert set(found) == expected
    assert all(a < b for a, b in found), "the earlier-given block comes first"
    for (na, _), (nb, _) in itertools.combinations(blocks, 2):
        a, b = block(str(na)), block(str(nb))
        assert a.overlaps(b) == na.overlaps(nb)
        assert a.subnet_of(b) == na.subnet_of(nb) and b.subnet_of(a) == nb.subnet_of(na)


def _read(text: str) -> tuple[object, ...]:
    try:
        network = ipaddress.IPv4Network(text)
    except ValueError as exc:
        return (type(exc), str(exc))
    return (int(network.network_address), int(network.broadcast_address), network.prefixlen, str(network))


WRITTEN = [
    "10.0.0.0/16", "0.0.0.0/0", "255.255.255.255/32", "1.2.3.4/32", "10.0.0.0", "10.0.0.0/016",
    "10.0.0.0/255.255.0.0", "10.0.0.0/0.0.255.255", "10.0.0.1/16", "10.00.0.0/16", "010.0.0.0/8", "256.0.0.0/8",
    "-1.0.0.0/8", "-0.0.0.0/8", "+10.0.0.0/8", "1_0.0.0.0/8", "\u0661.0.0.0/8", " 10.0.0.0/16", "10.0.0.0/16\n",
    "10.0.0.0/ 16", "10.0.0.0/33", "10.0.0.0/-0", "10.0.0.0/+8", "10.0.0.0/", "10.0.0.0/8/", "a", "",
]


@pytest.mark.parametrize("text", WRITTEN)
def test_a_block_reads_as_ipaddress_reads_it(text: str) -> None:
    """Same addresses, prefix and canonical text, or the same error (``ipaddress`` reads what is not canonical)."""
    try:
        got: tuple[object, ...] = tuple(block(text))
    except ValueError as exc:
        got = (type(exc), str(exc))
    assert got == _read(text)


def test_random_blocks_read_as_ipaddress_reads_them() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        prefix = rng.randint(0, 32)
        address = rng.getrandbits(32) & ~((1 << (32 - prefix)) - 1)
        text = str(ipaddress.IPv4Network((address, prefix)))
        assert tuple(block(text)) == _read(text)
        assert isinstance(block(text), Block) and str(block(text)) == text


def _validated(value: str) -> str:
    """The inventory's CIDR validation as ``ipaddress`` alone gives it (the reference for the canonical shortcut)."""
    network = ipaddress.ip_network(value, strict=True)
    if network.version != 4:
        raise ValueError("IPv6")
    return str(network)


@pytest.mark.parametrize("text", [*WRITTEN, "::/0", "fe80::/10"])
def test_cidr_validation_takes_the_canonical_shortcut_only_when_ipaddress_agrees(text: str) -> None:
    try:
        expected: str | None = _validated(text)
    except ValueError:
        expected = None
    try:
        got: str | None = _cidr(text)
    except ValueError:
        got = None
    assert got == expected


def test_remembered_and_carved_blocks_read_as_ipaddress_reads_them() -> None:
    """The memo of blocks read or carved (``block_at``, ``canonical_block``) gives what reading gives, whatever came
    first: a carved block equals the block of its text read afresh, an unaligned carve is not remembered, and
    non-canonical texts (``10.0.0.0/255.255.0.0``) stay ``ipaddress``'s even after their canonical form was seen."""
    rng = random.Random(11)
    for _ in range(2000):
        prefix = rng.randint(0, 32)
        first = rng.getrandbits(32) & ~((1 << (32 - prefix)) - 1)
        carved = cidr.block_at(first, prefix)
        network = ipaddress.IPv4Network((first, prefix))
        assert tuple(carved) == _read(str(network)) and cidr._read_canonical(carved.text) == carved
        assert block(carved.text) is carved and cidr.canonical_block(carved.text) is carved
    unaligned = cidr.block_at(0x0A000001, 16)  # 10.0.0.1/16: host bits set
    assert unaligned.text not in cidr._KNOWN and cidr.canonical_block(unaligned.text) is None
    with pytest.raises(ValueError):
        block(unaligned.text)
    block("10.0.0.0/16")
    for text in WRITTEN:
        try:
            got: tuple[object, ...] = tuple(block(text))
        except ValueError as exc:
            got = (type(exc), str(exc))
        assert got == _read(text)
        assert (cidr.canonical_block(text) is not None) == (_read(text)[-1] == text)
