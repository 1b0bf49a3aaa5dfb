"""IPv4 CIDR blocks as integer spans, and the overlapping pairs among many found by one sweep over sorted
intervals: O(n log n + pairs), never all pairs.

Two CIDR blocks overlap exactly when one contains the other, so after sorting by (first address, widest first)
the blocks still open at any point form a chain of nested blocks: every open block contains the next one.
The checks compare addresses as integers (``Block``), not ``ipaddress`` objects: a fleet has thousands of
blocks, and building those objects was most of the network checks' time.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import NamedTuple, TypeVar

T = TypeVar("T")


class Block(NamedTuple):
    """An IPv4 CIDR block: first and last address as integers, prefix length, and the block as ``ipaddress``
    writes it (``10.0.0.0/16``)."""

    first: int
    last: int
    prefixlen: int
    text: str

    def overlaps(self, other: Block) -> bool:
        """Whether the two blocks share an address."""
        return self.first <= other.last and other.first <= self.last

    def subnet_of(self, other: Block) -> bool:
        """Whether this block lies inside ``other``."""
        return other.first <= self.first and self.last <= other.last

    def __str__(self) -> str:
        return self.text


#: Blocks already read or made, by their text (bounded): the loader's validation reads every CIDR of the inventory
#: (``canonical_block``) before the checks and the network plans read them again, and the network plans parse the
#: subnets they carve (``block_at``). A block is kept under its own text only, so a hit is what reading gives.
_KNOWN: dict[str, Block] = {}
_KNOWN_LIMIT = 1 << 16


def _remember(found: Block) -> Block:
    if len(_KNOWN) >= _KNOWN_LIMIT:
        _KNOWN.clear()
    _KNOWN[found.text] = found
    return found


def block_at(first: int, prefixlen: int) -> Block:
    """The block of prefix length ``prefixlen`` starting at address ``first`` (remembered when aligned to it: then
    its text is canonical and reads as this block)."""
    text = f"{first >> 24}.{(first >> 16) & 255}.{(first >> 8) & 255}.{first & 255}/{prefixlen}"
    known = _KNOWN.get(text)
    if known is not None:
        return known
    size = 1 << (32 - prefixlen)
    made = Block(first, first + size - 1, prefixlen, text)
    return _remember(made) if first & (size - 1) == 0 else made


def canonical_block(cidr: str) -> Block | None:
    """The block of a CIDR written the way ``ipaddress`` writes it (``10.0.0.0/16``: octets 0..255 in plain
    decimal, a prefix length, no host bits set), else None."""
    known = _KNOWN.get(cidr)
    if known is not None:
        return known
    found = _read_canonical(cidr)
    return None if found is None else _remember(found)


def _read_canonical(cidr: str) -> Block | None:
    """``canonical_block`` without the memo."""
    address, _, prefix = cidr.partition("/")
    try:
        a, b, c, d = map(int, address.split("."))
        prefixlen = int(prefix)
    except ValueError:
        return None
    first = (a << 24) | (b << 16) | (c << 8) | d
    size = 1 << (32 - prefixlen) if 0 <= prefixlen <= 32 else 0
    if min(a, b, c, d) >= 0 and max(a, b, c, d) <= 255 and size and first & (size - 1) == 0 \
            and f"{a}.{b}.{c}.{d}/{prefixlen}" == cidr:
        return Block(first, first + size - 1, prefixlen, cidr)
    return None


def block(cidr: str) -> Block:
    """The block of a CIDR string, exactly as ``ipaddress.IPv4Network(cidr)`` reads it (its errors included):
    the canonical form (what validated inventory holds) is read directly, anything else by ``ipaddress``."""
    found = canonical_block(cidr)
    if found is not None:
        return found
    return _other_block(cidr)


@lru_cache(maxsize=1 << 10)
def _other_block(cidr: str) -> Block:
    """``block`` of a CIDR not in the canonical form (``10.0.0.0/255.255.0.0``), by ``ipaddress``."""
    network = ipaddress.IPv4Network(cidr)
    return Block(int(network.network_address), int(network.broadcast_address), network.prefixlen, str(network))


def overlapping_pairs(blocks: Iterable[tuple[Block, T]]) -> Iterator[tuple[T, T]]:
    """Every pair of tagged blocks that overlap, each once, the first of the pair the earlier-given block."""
    indexed = [(net.first, net.last, index, tag) for index, (net, tag) in enumerate(blocks)]
    indexed.sort(key=lambda item: (item[0], -item[1], item[2]))
    open_blocks: list[tuple[int, int, int, T]] = []
    for start, end, index, tag in indexed:
        while open_blocks and open_blocks[-1][1] < start:
            open_blocks.pop()
        for _, _, other_index, other_tag in open_blocks:  # each contains this block
            yield (other_tag, tag) if other_index < index else (tag, other_tag)
        open_blocks.append((start, end, index, tag))
