"""The interval sweep finds exactly the overlapping pairs the pairwise comparison finds (random CIDR sets)."""

from __future__ import annotations

import ipaddress
import itertools
import random

import pytest

from generator.inventory.cidr import overlapping_pairs


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
    found = list(overlapping_pairs(blocks))
    assert len(found) == len(set(found)), "a pair reported twice"
    assert set(found) == expected
    assert all(a < b for a, b in found), "the earlier-given block comes first"
