"""Overlapping windows over long texts, and which window owns each character when merging.

Training and inference cut texts with the same `plan_windows`; inference stitches the
per-window predictions back with `window_owners`.
"""
from __future__ import annotations

from collections.abc import Sequence


def plan_windows(length: int, *, max_chars: int, overlap: int) -> list[tuple[int, int]]:
    """Character ranges ``[start, end)`` of overlapping windows that cover ``length`` characters.

    A text that fits gives one window. A longer one gets the fewest windows of at most
    ``max_chars`` that can share at least ``overlap`` characters with their neighbours, all
    of one size and evenly spaced (steps differ by one at most): a 130-character text with
    ``max_chars=126`` becomes two windows of 81, not 126 + 126 sharing 122 characters.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    if not 0 <= overlap < max_chars:
        raise ValueError(f"overlap must be in [0, max_chars), got {overlap}")
    if length <= max_chars:
        return [(0, length)]
    count = -(-(length - overlap) // (max_chars - overlap))  # ceil: fewest windows that fit
    size = -(-(length + (count - 1) * overlap) // count)  # ceil: <= max_chars by choice of count
    # Starts spread (length - size) over count - 1 steps; each step is <= size - overlap.
    return [(k * (length - size) // (count - 1), k * (length - size) // (count - 1) + size)
            for k in range(count)]


def window_owners(windows: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each window, the character range whose predictions it owns when merging.

    Overlaps are cut at their midpoint, so every character is owned by exactly one window and
    always by one in which it has context on both sides.
    """
    owned = []
    for k, (start, end) in enumerate(windows):
        lo = start if k == 0 else (start + windows[k - 1][1]) // 2
        hi = end if k == len(windows) - 1 else (windows[k + 1][0] + end) // 2
        owned.append((lo, hi))
    return owned


def merge_windows(windows: Sequence[tuple[int, int]], per_window: Sequence[Sequence]) -> list:
    """Stitch per-window values (one per character of each window) into one list for the
    whole text: each character takes the value of the window that owns it (`window_owners`)."""
    merged: list = []
    for (start, _), (lo, hi), values in zip(windows, window_owners(windows), per_window):
        merged.extend(values[lo - start:hi - start])
    return merged
