"""Several windows in one model row, for inference: short texts without padding.

(Not `cner.encoding.packing`, which packs pre-training text, nor `cner.runtime.packing`,
which packs weights.)

A batch of windows padded to its widest one wastes the padding's compute: a third of the
positions on 32 MSRA sentences, a tenth on 1,000 sorted by length. Instead, `share_rows`
puts windows (``[CLS] chars [SEP]`` each) one after the other into rows, and
`collate_shared_rows` gives the encoder what keeps them apart: position ids that restart at
0 in each window, and an additive attention mask ``(R, 1, W, W)`` that lets a position see
only the positions of its own window. A transformer with absolute position embeddings then
computes for each window exactly what it computes for the window alone (to float rounding;
checked per encoder type in ``tests/test_shared_rows.py``); `gather_windows` takes each
window's character scores back out.

Rows are filled best-fit, widest window first. A row holds at least ``min_width`` positions
(or its first window, if wider): wider rows would leave fewer rows but make every position
attend over more masked ones (attention's cost grows with the row's width). So sharing is
not always cheaper: on 1,000 sentences sorted by length, padded batches waste 5% and rows of
128 cost more attention than that. `layout_cost` prices both layouts of a chunk, and the
predictor runs the cheaper.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch

from cner.encoding.features import Featurizer

ROW_WIDTH = 128  # positions a row holds at least (`share_rows`' ``min_width``)


def share_rows(widths: Sequence[int], *, min_width: int = ROW_WIDTH) -> list[list[int]]:
    """Windows (their ``widths``, in positions, sorted widest first) into rows: lists of
    window indices, each window in one row, in the order the row holds them; a row's windows
    fill at most ``max(min_width, its first window's width)`` positions."""
    if any(a < b for a, b in zip(widths, widths[1:])):
        raise ValueError("share_rows needs the widths sorted widest first")
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (positions left, row), sorted: best fit by bisection
    for k, width in enumerate(widths):
        at = bisect.bisect_left(free, (width, -1))
        if at < len(free):
            left, row = free.pop(at)
        else:
            left, row = max(min_width, width), len(rows)
            rows.append([])
        rows[row].append(k)
        if left - width > 0:
            bisect.insort(free, (left - width, row))
    return rows


def layout_cost(batches: Sequence[Sequence[int]], *, overhead: float,
                attention_width: float) -> float:
    """The cost of running ``batches`` (each the widths of its rows; a batch pads its rows to
    the widest), in positions' worth: per batch ``overhead``, per row ``w * (1 + w /
    attention_width)`` at the batch's width ``w`` (attention's cost grows with the width:
    `cner.runtime.engine.attention_width`). Compares padded windows with shared rows."""
    cost = 0.0
    for widths in batches:
        width = max(widths)
        cost += overhead + len(widths) * width * (1 + width / attention_width)
    return cost


def collate_shared_rows(windows: Sequence[dict[str, list[int]]], rows: Sequence[Sequence[int]],
                        featurizer: Featurizer, dtype: torch.dtype
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The model inputs of ``windows`` laid out in ``rows`` (`share_rows`), and where each
    window's characters are.

    Returns ``(inputs, where, char_mask)``: ``inputs`` holds each feature long ``(R, W)``
    (padding: the feature's pad id), ``position_ids`` long ``(R, W)`` (0 at each window's
    [CLS]) and ``attention_mask`` ``dtype`` ``(R, 1, W, W)``: 0 where query and key are in
    the same window, the dtype's lowest value elsewhere (a padding position sees itself
    only); ``where`` long ``(N, L)``: the flat position ``row * W + column`` of window
    ``k``'s character ``i`` (0 past its end); ``char_mask`` bool ``(N, L)``.
    """
    spans = [(0, 0)] * len(windows)  # per window: (row, column of its [CLS])
    used = []
    for r, row in enumerate(rows):
        column = 0
        for k in row:
            spans[k] = (r, column)
            column += len(windows[k]["input_ids"])
        used.append(column)
    width = max(used)
    n_rows = len(rows)
    inputs = {key: torch.full((n_rows, width), featurizer.pad_id(key), dtype=torch.long)
              for key in featurizer.keys}
    positions = torch.zeros(n_rows, width, dtype=torch.long)  # shape: (R, W)
    segment = torch.full((n_rows, width), -1, dtype=torch.long)  # shape: (R, W); -1: padding
    lengths = torch.tensor([len(w["input_ids"]) - 2 for w in windows])  # shape: (N,)
    for k, window in enumerate(windows):
        r, column = spans[k]
        end = column + len(window["input_ids"])
        for key in featurizer.keys:
            inputs[key][r, column:end] = torch.tensor(window[key], dtype=torch.long)
        positions[r, column:end] = torch.arange(end - column)
        segment[r, column:end] = k
    same = segment[:, :, None] == segment[:, None, :]  # shape: (R, W, W)
    same |= torch.eye(width, dtype=torch.bool)  # padding attends to itself: no empty softmax
    mask = torch.zeros(same.shape, dtype=dtype).masked_fill_(~same, torch.finfo(dtype).min)
    inputs["position_ids"] = positions
    inputs["attention_mask"] = mask[:, None]  # shape: (R, 1, W, W)
    longest = int(lengths.max()) if len(windows) else 0
    char_mask = torch.arange(longest) < lengths[:, None]  # shape: (N, L)
    first = torch.tensor([r * width + column + 1 for r, column in spans])  # shape: (N,)
    where = (first[:, None] + torch.arange(longest)) * char_mask  # shape: (N, L)
    return inputs, where, char_mask


def gather_windows(scores: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Each window's rows of ``scores`` ``(R, W, T)``: ``(N, L, T)`` at ``where`` ``(N, L)``
    (`collate_shared_rows`); positions past a window's end hold some other position's
    scores, to be masked by its ``char_mask``."""
    flat = scores.reshape(-1, scores.size(-1))  # shape: (R*W, T)
    return flat[where]  # shape: (N, L, T)
