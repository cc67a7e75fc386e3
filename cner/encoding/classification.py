"""Character-level inputs for sequence classification: single texts, sentence pairs and the
long-text strategies (head, tail, head+tail, chunks).

As for NER, each character is one position (`CharVocab.encode`). A pair is
``[CLS] a [SEP] b [SEP]`` with segment ids 0 for ``[CLS] a [SEP]`` and 1 for ``b [SEP]``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from cner.encoding.vocab import CharVocab
from cner.encoding.windows import plan_windows
from cner.errors import ConfigError

STRATEGIES = ("head", "tail", "head+tail", "chunks")


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ConfigError(f"classify.truncation must be one of {', '.join(STRATEGIES)}, "
                          f"found {strategy!r}")
    return strategy


def truncate(text: str, budget: int, *, strategy: str, head_chars: int = 128) -> str:
    """The characters of ``text`` kept within ``budget`` positions.

    ``head``: the first ``budget``; ``tail``: the last ``budget``; ``head+tail``: the first
    ``min(head_chars, budget)`` plus the last ``budget - head`` (a review's verdict is often
    at its end).
    """
    if len(text) <= budget:
        return text
    if strategy == "head":
        return text[:budget]
    if strategy == "tail":
        return text[len(text) - budget:]
    if strategy == "head+tail":
        head = min(head_chars, budget)
        tail = budget - head
        return text[:head] + (text[len(text) - tail:] if tail else "")
    raise ConfigError(f"truncate() handles head, tail and head+tail, not {strategy!r}")


def encode_single(text: str, vocab: CharVocab, *, max_length: int, strategy: str = "head+tail",
                  head_chars: int = 128, overlap: int = 0) -> list[dict[str, list[int]]]:
    """One chunk (or, with ``strategy="chunks"``, one per window) of model inputs."""
    budget = max_length - 2
    if strategy == "chunks":
        pieces = [text[s:e] for s, e in plan_windows(len(text), max_chars=budget, overlap=overlap)]
    else:
        pieces = [truncate(text, budget, strategy=check_strategy(strategy), head_chars=head_chars)]
    out = []
    for piece in pieces:
        ids = [vocab.cls_id, *vocab.encode(piece), vocab.sep_id]
        out.append({"input_ids": ids, "token_type_ids": [0] * len(ids)})
    return out


def pair_lengths(a: int, b: int, budget: int) -> tuple[int, int]:
    """Longest-first truncation of lengths ``a`` and ``b`` to ``budget`` in closed form."""
    if a + b <= budget:
        return a, b
    if 2 * min(a, b) <= budget:  # the shorter text fits whole
        return (a, budget - a) if a < b else (budget - b, b)
    return budget // 2, budget - budget // 2


def encode_pair(text: str, pair: str, vocab: CharVocab, *, max_length: int
                ) -> dict[str, list[int]]:
    """``[CLS] a [SEP] b [SEP]``; when too long, characters are cut from the end of the
    longer text first (both keep their start, where sentence-pair cues usually sit)."""
    a, b = pair_lengths(len(text), len(pair), max_length - 3)
    first = [vocab.cls_id, *vocab.encode(text[:a]), vocab.sep_id]
    second = [*vocab.encode(pair[:b]), vocab.sep_id]
    return {"input_ids": first + second, "token_type_ids": [0] * len(first) + [1] * len(second)}


def collate_docs(docs: Sequence[list[dict[str, list[int]]]], pad_id: int) -> dict:
    """Chunks of several documents into one padded batch with ``doc_index``."""
    chunks = [(d, chunk) for d, doc in enumerate(docs) for chunk in doc]
    width = max(len(chunk["input_ids"]) for _, chunk in chunks)
    input_ids = torch.full((len(chunks), width), pad_id, dtype=torch.long)  # shape: (C, L)
    token_type_ids = torch.zeros((len(chunks), width), dtype=torch.long)
    attention_mask = torch.zeros((len(chunks), width), dtype=torch.long)
    for row, (_, chunk) in enumerate(chunks):
        n = len(chunk["input_ids"])
        input_ids[row, :n] = torch.tensor(chunk["input_ids"])
        token_type_ids[row, :n] = torch.tensor(chunk["token_type_ids"])
        attention_mask[row, :n] = 1
    doc_index = torch.tensor([d for d, _ in chunks], dtype=torch.long)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids,
            "attention_mask": attention_mask, "doc_index": doc_index,
            "n_chars": int(attention_mask.sum()) - 2 * len(chunks)}
