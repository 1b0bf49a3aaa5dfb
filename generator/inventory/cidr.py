"""Overlapping address ranges found by one sweep over sorted intervals: O(n log n + pairs), never all pairs.

Two CIDR blocks overlap exactly when one contains the other, so after sorting by (first address, widest first)
the blocks still open at any point form a chain of nested blocks: every open block contains the next one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def overlapping_pairs(blocks: Iterable[tuple[ipaddress.IPv4Network, T]]) -> Iterator[tuple[T, T]]:
    """Every pair of tagged blocks that overlap, each once, the first of the pair the earlier-given block."""
    indexed = [(int(net.network_address), int(net.broadcast_address), index, tag)
               for index, (net, tag) in enumerate(blocks)]
    indexed.sort(key=lambda item: (item[0], -item[1], item[2]))
    open_blocks: list[tuple[int, int, int, T]] = []
    for start, end, index, tag in indexed:
        while open_blocks and open_blocks[-1][1] < start:
            open_blocks.pop()
        for _, _, other_index, other_tag in open_blocks:  # each contains this block
            yield (other_tag, tag) if other_index < index else (tag, other_tag)
        open_blocks.append((start, end, index, tag))
