"""Many texts as flat arrays, and training windows over them collated by NumPy gathers.

`cner distill` trains on every line of a raw-text corpus (MSRA's and four other corpora's
training text: 5.2 M characters), each character carrying the teacher's distribution over
the tags. Held the way `cner train` holds its corpus (a Python list of ids per window and
feature) that is ~100 bytes a character; here each feature is one int32 array over all
texts, a window is ``(text, start, end)`` into it, and a batch is built by one index
array: no Python loop over its rows or characters.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cner.encoding.features import Featurizer
from cner.encoding.windows import plan_windows


def _dtype(key: str) -> type:
    return np.int64 if key == "lexicon_ids" else np.int32  # lexicon bits use all 32 bits


@dataclass(frozen=True)
class TextStore:
    """The featurizer's ids of many texts: text ``i`` is positions ``offsets[i]:offsets[i+1]``
    of every array in ``features`` (``(N,)`` per `Featurizer.keys` entry: int32, int64 for
    the lexicon's 32-bit masks)."""

    offsets: np.ndarray  # int64 (n_texts + 1,)
    features: dict[str, np.ndarray]

    @classmethod
    def build(cls, texts: Sequence[str], featurizer: Featurizer) -> TextStore:
        """Compute every text's features once (`Featurizer.features`)."""
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        parts: dict[str, list[np.ndarray]] = {key: [] for key in featurizer.keys}
        for text in texts:
            if text:
                for key, ids in featurizer.features(text).items():
                    parts[key].append(np.asarray(ids, dtype=_dtype(key)))
        features = {key: np.concatenate(arrays) if arrays else np.zeros(0, _dtype(key))
                    for key, arrays in parts.items()}
        return cls(offsets, features)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def windows(self, texts: Sequence[int], *, max_chars: int, overlap: int) -> np.ndarray:
        """The training windows of the texts numbered ``texts``, cut as `plan_windows` cuts
        them: int64 ``(W, 3)`` rows ``(text, start, end)``; empty texts have none."""
        lengths = np.diff(self.offsets)
        rows = [(i, s, e) for i in texts if lengths[i]
                for s, e in plan_windows(int(lengths[i]), max_chars=max_chars, overlap=overlap)]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 3)

    def collate(self, windows: np.ndarray, featurizer: Featurizer,
                per_char: Mapping[str, np.ndarray] | None = None) -> dict[str, torch.Tensor]:
        """Model inputs of ``windows`` (int64 ``(b, 3)``), exactly as
        `cner.encoding.batching.collate_inputs` pads them: each feature long ``(b, L + 2)``
        (``[CLS] chars [SEP]``, then padding), ``attention_mask`` long ``(b, L + 2)``,
        ``char_mask`` bool ``(b, L)``; plus each ``per_char`` array (``(N, ...)``, aligned
        with the texts' characters) gathered as ``(b, L, ...)``, 0 on padding."""
        b = len(windows)
        starts = self.offsets[windows[:, 0]] + windows[:, 1]  # shape: (b,)
        lengths = windows[:, 2] - windows[:, 1]  # shape: (b,)
        width = int(lengths.max())
        valid = np.arange(width) < lengths[:, None]  # shape: (b, L)
        index = np.where(valid, starts[:, None] + np.arange(width), 0)  # shape: (b, L)
        rows = np.arange(b)
        batch = {}
        for key in featurizer.keys:
            pad = featurizer.pad_id(key)
            first, last = ((featurizer.vocab.cls_id, featurizer.vocab.sep_id)
                           if key == "input_ids" else (0, 0))
            ids = np.full((b, width + 2), pad, dtype=np.int64)  # shape: (b, L+2)
            ids[:, 0] = first
            ids[:, 1:-1] = np.where(valid, self.features[key][index], pad)
            ids[rows, lengths + 1] = last
            batch[key] = torch.from_numpy(ids)
        batch["attention_mask"] = torch.from_numpy(
            (np.arange(width + 2) < (lengths + 2)[:, None]).astype(np.int64))  # shape: (b, L+2)
        batch["char_mask"] = torch.from_numpy(valid)  # shape: (b, L)
        for name, values in (per_char or {}).items():
            gathered = values[index]  # shape: (b, L, ...)
            gathered[~valid] = 0
            batch[name] = torch.from_numpy(gathered)
        return batch


class WindowBatches(Sequence):
    """An epoch's batches, collated when the training loop reaches them (``make(indices)``
    turns a list of window indices into a batch), so an epoch of millions of characters is
    never held collated at once. Slicing gives a list of batches, as the loop expects."""

    def __init__(self, plan: Sequence[Sequence[int]], make) -> None:
        self.plan, self.make = plan, make

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.make(batch) for batch in self.plan[index]]
        return self.make(self.plan[index])
