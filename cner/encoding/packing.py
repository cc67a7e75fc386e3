"""Pre-training sequences: text packed into full-length sequences, and masked-LM batches.

(Not to be confused with `cner.runtime.packing`, which packs weights for inference.)

`pack_documents` concatenates the lines of each document (`cner.data.text.read_documents`)
and cuts the result into sequences of exactly ``length`` characters; only the last sequence of
a document is shorter, and no sequence holds characters of two documents. Every character
carries two flags: the first character of a jieba word (`WORD`, for whole-word and span
masking) and of a line (`LINE`, where a sentence-pair objective prefers to split).

`MlmBatches` is the ``epoch_batches(epoch)`` sequence the training loop walks: batch ``i`` of
epoch ``e`` is built on demand (``[CLS] chars [SEP]``, or ``[CLS] A [SEP] B [SEP]`` for the
sentence-order / next-sentence objectives, masked by `cner.encoding.masking.Masker`) from a
generator seeded with ``(seed, e, i)``: masks change every epoch, and a resumed run rebuilds
exactly the batches an uninterrupted one would have seen.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from cner.encoding.batching import bucketed_batches
from cner.encoding.masking import IGNORE, Masker, word_starts
from cner.encoding.vocab import CharVocab

WORD, LINE = 1, 2  # flag bits: first character of a word, of a line
PAIR_OBJECTIVES = ("none", "sop", "nsp")
TRAIN_STREAM, EVAL_STREAM = 0, 1  # first entropy word of a batch's seed


@dataclass
class PackedText:
    """Character ids and flags of every sequence, end to end: sequence ``k`` is
    ``ids[bounds[k]:bounds[k + 1]]``."""

    ids: np.ndarray  # int32 (N,)
    flags: np.ndarray  # uint8 (N,)
    bounds: np.ndarray  # int64 (n_sequences + 1,)
    characters: int = 0
    lines: int = 0
    documents: int = 0
    per_file: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def sequence(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.bounds[k], self.bounds[k + 1]
        return self.ids[start:end], self.flags[start:end]

    def lengths(self) -> np.ndarray:
        return np.diff(self.bounds)


def pack_documents(documents: Iterable[list[str]], vocab: CharVocab, *, length: int,
                   words: bool = True) -> PackedText:
    """Pack ``documents`` (lists of lines) into sequences of ``length`` characters (see the
    module docstring); ``words``: segment every line with jieba for the `WORD` flags (else
    every character starts a word)."""
    if length < 2:
        raise ValueError(f"sequences need at least 2 characters, got {length}")
    ids, flags, bounds = array("i"), array("B"), array("q", [0])
    lines = documents_seen = 0
    for document in documents:
        start = len(ids)
        for line in document:
            ids.extend(vocab.encode(line))
            if words:
                marks = word_starts(line).astype(np.uint8)
            else:
                marks = np.ones(len(line), dtype=np.uint8)
            marks[0] |= LINE
            flags.frombytes(marks.tobytes())
            lines += 1
        if len(ids) == start:
            continue
        documents_seen += 1
        bounds.extend(range(start + length, len(ids), length))
        bounds.append(len(ids))
    return PackedText(np.frombuffer(ids, dtype=np.int32).copy() if ids else
                      np.zeros(0, dtype=np.int32),
                      np.frombuffer(flags, dtype=np.uint8).copy(),
                      np.frombuffer(bounds, dtype=np.int64).copy(), characters=len(ids),
                      lines=lines, documents=documents_seen)


@dataclass(frozen=True, eq=False)
class BatchBuilder:
    """Turns sequences of a `PackedText` into one masked-LM batch."""

    packed: PackedText
    vocab: CharVocab
    masker: Masker
    pair_objective: str = "none"  # none | sop | nsp
    use_words: bool = True  # pass the WORD flags to the masker (wwm, span)
    pool: np.ndarray | None = None  # nsp: the sequences a random B comes from (None: all)

    def __post_init__(self) -> None:
        if self.pair_objective not in PAIR_OBJECTIVES:
            raise ValueError(f"pair_objective must be one of {PAIR_OBJECTIVES}, "
                             f"got {self.pair_objective!r}")

    def _pair(self, k: int, ids: np.ndarray, flags: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``[CLS] A [SEP] B [SEP]`` from one sequence, its flags, type ids and pair label:
        split at a random line start (else a random position); ``sop``: A and B swapped
        half of the time (label 1); ``nsp``: B replaced half of the time by as many
        characters of another random sequence (label 1)."""
        v = self.vocab
        n = len(ids)
        if n < 2:
            seq, marks, types = self._single(ids, flags)
            return seq, marks, types, IGNORE
        lines = np.flatnonzero(flags[1:] & LINE) + 1
        cut = int(rng.choice(lines)) if len(lines) else int(rng.integers(1, n))
        a, fa, b, fb = ids[:cut], flags[:cut], ids[cut:], flags[cut:]
        label = 0
        if self.pair_objective == "sop":
            if rng.random() < 0.5:
                a, fa, b, fb, label = b, fb, a, fa, 1
        elif rng.random() < 0.5:
            other = self._other(k, rng)
            if other is not None:
                oids, oflags = self.packed.sequence(other)
                b, fb, label = oids[:len(b)], oflags[:len(b)], 1
        seq = np.concatenate([[v.cls_id], a, [v.sep_id], b, [v.sep_id]]).astype(np.int64)
        marks = np.concatenate([[WORD], fa, [WORD], fb, [WORD]]).astype(np.uint8)
        types = np.concatenate([np.zeros(len(a) + 2, np.int64), np.ones(len(b) + 1, np.int64)])
        return seq, marks, types, label

    def _other(self, k: int, rng: np.random.Generator) -> int | None:
        """A random sequence of the pool other than ``k`` (None: there is none)."""
        pool = self.pool if self.pool is not None else np.arange(len(self.packed))
        others = len(pool) - int(k in pool)
        if others < 1:
            return None
        while True:  # at most a few draws: k is one sequence of the pool
            other = int(pool[rng.integers(len(pool))])
            if other != k:
                return other

    def _single(self, ids: np.ndarray, flags: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        v = self.vocab
        seq = np.concatenate([[v.cls_id], ids, [v.sep_id]]).astype(np.int64)
        marks = np.concatenate([[WORD], flags, [WORD]]).astype(np.uint8)
        return seq, marks, np.zeros(len(seq), np.int64)

    def build(self, sequences: Sequence[int], rng: np.random.Generator) -> dict:
        """The batch of the packed sequences numbered ``sequences``: ``input_ids``,
        ``attention_mask``, ``token_type_ids`` and ``labels`` long ``(B, L)`` (right-padded;
        labels `IGNORE` where nothing is predicted), ``pair_labels`` long ``(B,)`` with a
        pair objective, ``n_chars`` (characters in the batch), and the 0-dim float tensors
        ``mlm_per_row`` (and ``pair_per_row``): the batch's selected positions (pair labels)
        per row, by which a DDP rank's slice of the batch normalises its loss sums, so that
        the ranks' weighted average is the whole batch's mean (`MaskedLanguageModel.forward`,
        `cner.training.distributed.row_slice`)."""
        rows, pair_labels, chars = [], [], 0
        for k in sequences:
            ids, flags = self.packed.sequence(int(k))
            chars += len(ids)  # a short sequence gets no pair, so count before the specials
            if self.pair_objective == "none":
                seq, marks, types = self._single(ids, flags)
            else:
                seq, marks, types, label = self._pair(int(k), ids, flags, rng)
                pair_labels.append(label)
            starts = (marks & WORD).astype(bool) if self.use_words else None
            inputs, labels = self.masker.mask(seq, starts, rng)
            rows.append((inputs, labels, types))
        width = max(len(r[0]) for r in rows)
        shape = (len(rows), width)
        input_ids = torch.full(shape, self.vocab.pad_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE, dtype=torch.long)
        token_type_ids = torch.zeros(shape, dtype=torch.long)
        attention_mask = torch.zeros(shape, dtype=torch.long)
        for row, (inputs, target, types) in enumerate(rows):
            n = len(inputs)
            input_ids[row, :n] = torch.from_numpy(inputs)
            labels[row, :n] = torch.from_numpy(target)
            token_type_ids[row, :n] = torch.from_numpy(types)
            attention_mask[row, :n] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": token_type_ids, "labels": labels, "n_chars": chars,
                 "mlm_per_row": (labels != IGNORE).sum() / len(rows)}
        if self.pair_objective != "none":
            batch["pair_labels"] = torch.tensor(pair_labels, dtype=torch.long)
            batch["pair_per_row"] = (batch["pair_labels"] != IGNORE).sum() / len(rows)
        return batch


class MlmBatches(Sequence):
    """The batches of one epoch, built on demand (`BatchBuilder.build`), each from a
    generator seeded with ``(stream, seed, epoch, index)``: indexing (and slicing, as the
    training loop does for gradient accumulation) gives the same batch every time."""

    def __init__(self, builder: BatchBuilder, plan: list[list[int]], *, seed: int, epoch: int,
                 stream: int = TRAIN_STREAM) -> None:
        self.builder, self.plan = builder, plan
        self.key = (stream, seed, epoch)

    def __len__(self) -> int:
        return len(self.plan)

    def batch(self, index: int) -> dict:
        rng = np.random.default_rng([*self.key, index])
        return self.builder.build(self.plan[index], rng)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.batch(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.batch(index)


def train_plan(packed: PackedText, sequences: Sequence[int], *, batch_size: int, seed: int,
               epoch: int) -> list[list[int]]:
    """The epoch's batches of sequence numbers: shuffled, similar lengths together
    (`bucketed_batches`, deterministic per ``(seed, epoch)``)."""
    lengths = packed.lengths()
    order = bucketed_batches([int(lengths[k]) for k in sequences], batch_size=batch_size,
                             seed=seed, epoch=epoch)
    return [[int(sequences[i]) for i in batch] for batch in order]


def eval_plan(packed: PackedText, sequences: Sequence[int], *, batch_size: int
              ) -> list[list[int]]:
    """Held-out batches: sequences by length, in fixed order."""
    lengths = packed.lengths()
    ordered = sorted((int(k) for k in sequences), key=lambda k: (-int(lengths[k]), k))
    return [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]


def hold_out(n_sequences: int, *, fraction: float, limit: int, seed: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """``(train, held_out)`` sequence numbers: a seeded ``fraction`` (at most ``limit``) held
    out for evaluation; none when that would leave fewer than 2 to train on."""
    n_eval = min(limit, int(round(n_sequences * fraction)))
    if n_sequences - n_eval < 2 or n_eval < 1:
        return np.arange(n_sequences), np.zeros(0, dtype=np.int64)
    order = np.random.default_rng([EVAL_STREAM, seed, 0]).permutation(n_sequences)
    return np.sort(order[n_eval:]), np.sort(order[:n_eval])
