"""Exercise 4, a reference solution: the lower of the high watermark and the first offset of
the earliest open transaction."""

from __future__ import annotations


def last_stable_offset(high_watermark: int, open_first_offsets: tuple[int, ...]) -> int:
    """The offset read_committed consumers may read up to."""
    # An open transaction's records from its first offset on are undecided; a consumer can
    # also read nothing above the high watermark (it is not durable yet).
    return min((high_watermark, *open_first_offsets))
