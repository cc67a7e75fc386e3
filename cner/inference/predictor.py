"""Batched, windowed prediction over many texts with a prepared engine.

Texts are cut into overlapping windows (`cner.encoding.windows.plan_windows`), all windows of
a chunk of texts are sorted by length and cut into batches of minimum cost
(`cner.encoding.batching.plan_batches`); with a BERT-type encoder (`Engine.shares_rows`),
short windows first share rows (`cner.encoding.shared_rows`), and the rows are batched. The
CRF decodes the whole chunk at once, and the per-window tags are stitched back
(`merge_windows`: each character takes the tag of the window where it sits furthest from an
edge), so an entity that crosses a window edge is found once. ``Entity.score`` is the mean,
over the entity's characters, of the CRF marginal probability (forward-backward) of the tag
each character was given.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cner.encoding.batching import collate_inputs, plan_batches
from cner.encoding.features import Featurizer
from cner.encoding.shared_rows import (collate_shared_rows, gather_windows, layout_cost,
                                       share_rows)
from cner.encoding.windows import merge_windows, plan_windows, window_owners
from cner.runtime.engine import Engine, attention_width, batch_overhead_positions
from cner.schemes import tags_to_spans

Job = tuple[int, int, int]  # (text index, window start, window end)


@dataclass(frozen=True)
class Entity:
    """An entity in a text: ``text == document[start:end]`` (end exclusive, code points)."""

    start: int
    end: int
    label: str
    text: str
    score: float


class Predictor:
    """Runs a `TokenTagger` engine over many texts: windows, length-sorted batches, merging."""

    def __init__(self, engine: Engine, featurizer: Featurizer, *, max_length: int,
                 overlap: int, batch_size: int = 64, max_positions: int = 2048) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.engine = engine
        self.featurizer = featurizer
        self.max_chars = max_length - 2
        self.overlap = min(overlap, self.max_chars - 1)
        self.batch_size = batch_size
        # Windows are sorted longest first and cut into batches by `plan_batches`, which
        # trades padding against the fixed cost of a model call (in positions' worth of
        # compute: estimated as ~5 ms of Python and small kernels at ~400 GFLOP/s).
        self.max_positions = max_positions
        self.batch_overhead = batch_overhead_positions(engine.model)
        self.attention_width = attention_width(engine.model)

    @property
    def model(self):
        return self.engine.model

    def _batches(self, order: list[int], jobs: list[Job], batch_size: int
                 ) -> Iterator[list[int]]:
        widths = [jobs[k][2] - jobs[k][1] + 2 for k in order]  # [CLS] and [SEP] included
        for start, end in plan_batches(widths, max_rows=batch_size,
                                       max_positions=self.max_positions,
                                       overhead=self.batch_overhead):
            yield order[start:end]

    def _decode(self, pending: list[tuple[list[int], torch.Tensor, torch.Tensor]]
                ) -> tuple[list[int], list[list[int]], list[list[float]]]:
        """Decode every batch of a chunk in one CRF call: the NumPy Viterbi and forward-backward
        loops pay a per-step cost, and step only over the rows still running (with one call
        per batch before, the small shape's CRF took 23 ms per 200 MSRA sentences; now 12-17).
        Returns the window indices in row order, the best tag ids and the marginal probability
        of each chosen tag."""
        rows = sum(len(chunk) for chunk, _, _ in pending)
        width = max(scores.size(1) for _, scores, _ in pending)
        first = pending[0][1]
        scores = first.new_zeros(rows, width, first.size(2))  # shape: (N, L, T)
        mask = torch.zeros(rows, width, dtype=torch.bool, device=first.device)  # shape: (N, L)
        order, row = [], 0
        for chunk, part, part_mask in pending:
            scores[row:row + len(chunk), :part.size(1)] = part
            mask[row:row + len(chunk), :part.size(1)] = part_mask
            order.extend(chunk)
            row += len(chunk)
        best, probs = self.model.decode_emissions(scores, mask)
        chosen = probs.gather(-1, best.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # shape: (N, L)
        return order, best.cpu().tolist(), chosen.float().cpu().tolist()

    def _emissions(self, windows: list[dict[str, list[int]]], rows: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Emission scores float32 ``(rows, L, T)`` and char mask bool ``(rows, L)``."""
        if self.engine.compiled and len(windows) == 1:
            windows = windows * 2  # a batch of one would compile again; row 1 is unused
        device = self.engine.device
        inputs = {k: t.to(device) for k, t in collate_inputs(windows, self.featurizer).items()}
        scores = self.engine.emissions(inputs)  # shape: (B, L, T); torch or onnxruntime
        return scores[:rows].float(), inputs["char_mask"][:rows]

    def _run_windows(self, texts: Sequence[str], batch_size: int
                     ) -> tuple[list[Job], list[tuple[list[int], torch.Tensor, torch.Tensor]]]:
        """Every window of ``texts`` through the engine: the windows, and per batch (window
        indices, emissions float32 ``(b, L, T)``, char mask bool ``(b, L)``)."""
        jobs: list[Job] = []
        for i, text in enumerate(texts):
            if text:
                jobs.extend((i, s, e) for s, e in plan_windows(len(text), max_chars=self.max_chars,
                                                               overlap=self.overlap))
        encoded = {i: self.featurizer.features(text) for i, text in enumerate(texts) if text}
        order = sorted(range(len(jobs)), key=lambda k: jobs[k][2] - jobs[k][1], reverse=True)
        windows = {k: self.featurizer.window(encoded[jobs[k][0]], jobs[k][1], jobs[k][2])
                   for k in order}
        batches = list(self._batches(order, jobs, batch_size))
        if self.engine.shares_rows:
            rows = self._shared_rows(order, windows, batch_size)
            if self._cheaper_shared(rows, batches, windows):
                return jobs, [self._run_rows(batch, windows) for batch in rows]
        pending = []  # per batch: (window indices, emissions, char_mask)
        for chunk in batches:
            pending.append((chunk, *self._emissions([windows[k] for k in chunk], len(chunk))))
        return jobs, pending

    def _shared_rows(self, order: list[int], windows: dict[int, dict[str, list[int]]],
                     batch_size: int) -> list[list[list[int]]]:
        """The windows (``order``: widest first) in shared rows (`share_rows`), the rows in
        cost-planned batches of at most ``batch_size`` rows: per batch, per row, its window
        indices."""
        sized = sorted(((sum(len(windows[order[i]]["input_ids"]) for i in row),
                         [order[i] for i in row])
                        for row in share_rows([len(windows[k]["input_ids"]) for k in order])),
                       key=lambda pair: -pair[0])  # widest row first, as plan_batches needs
        widths = [width for width, _ in sized]
        return [[row for _, row in sized[start:end]] for start, end in plan_batches(
            widths, max_rows=batch_size, max_positions=self.max_positions,
            overhead=self.batch_overhead)]

    def _cheaper_shared(self, rows: list[list[list[int]]], batches: list[list[int]],
                        windows: dict[int, dict[str, list[int]]]) -> bool:
        """Whether the shared ``rows`` (`_shared_rows`) cost less than the padded ``batches``
        (`layout_cost`: attention over wider rows against padding)."""
        def width(k: int) -> int:
            return len(windows[k]["input_ids"])

        shared = [[sum(map(width, row)) for row in batch] for batch in rows]
        padded = [[width(batch[0])] * len(batch) for batch in batches]
        return (layout_cost(shared, overhead=self.batch_overhead,
                            attention_width=self.attention_width)
                < layout_cost(padded, overhead=self.batch_overhead,
                              attention_width=self.attention_width))

    def _run_rows(self, rows: list[list[int]], windows: dict[int, dict[str, list[int]]]
                  ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """One batch of shared rows through the engine: its windows' indices, emissions
        float32 ``(n, L, T)`` and char mask bool ``(n, L)``."""
        chunk = [k for row in rows for k in row]
        slots = {k: i for i, k in enumerate(chunk)}
        inputs, where, char_mask = collate_shared_rows(
            [windows[k] for k in chunk], [[slots[k] for k in row] for row in rows],
            self.featurizer, self.engine.mask_dtype)
        if self.engine.compiled and len(rows) == 1:  # one row would compile again
            inputs = {key: torch.cat([t, t]) for key, t in inputs.items()}
        device = self.engine.device
        scores = self.engine.shared_row_emissions(
            {key: t.to(device) for key, t in inputs.items()})  # shape: (R, W, T)
        return chunk, gather_windows(scores, where.to(device)).float(), char_mask.to(device)

    def tag_texts(self, texts: Sequence[str], *, batch_size: int | None = None
                  ) -> list[tuple[list[str], list[float]]]:
        """Per text: one tag and the marginal probability of that tag per character."""
        jobs, pending = self._run_windows(texts, batch_size or self.batch_size)
        results: list = [None] * len(jobs)
        tags = self.model.tags
        if pending:
            decoded, best, chosen = self._decode(pending)
            for row, k in enumerate(decoded):
                n = jobs[k][2] - jobs[k][1]
                results[k] = ([tags[t] for t in best[row][:n]], chosen[row][:n])
        out: list[tuple[list[str], list[float]]] = [([], []) for _ in texts]
        for i, ks in itertools.groupby(range(len(jobs)), key=lambda k: jobs[k][0]):
            ks = list(ks)
            spans = [(jobs[k][1], jobs[k][2]) for k in ks]
            out[i] = (merge_windows(spans, [results[k][0] for k in ks]),
                      merge_windows(spans, [results[k][1] for k in ks]))
        return out

    @torch.inference_mode()
    def tag_distributions(self, texts: Sequence[str], *, temperature: float = 1.0,
                          batch_size: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: its best tag ids, int64 ``(n,)`` (Viterbi, as `tag_texts`), and every
        character's distribution over the tags, float32 ``(n, T)``: the CRF marginals of the
        path scores divided by ``temperature`` (`cner.models.distillation.tag_log_probs`).
        Windows and their merging are `tag_texts`'; a distillation teacher's soft targets."""
        from cner.models.distillation import tag_log_probs

        jobs, pending = self._run_windows(texts, batch_size or self.batch_size)
        per_window: list = [None] * len(jobs)
        for chunk, scores, mask in pending:
            best, _ = self.model.decode_emissions(scores, mask, with_marginals=False)
            probs = tag_log_probs(self.model, scores, mask, temperature=temperature).exp()
            best, probs = best.cpu().numpy(), probs.cpu().numpy()  # shapes: (b, L), (b, L, T)
            for row, k in enumerate(chunk):
                n = jobs[k][2] - jobs[k][1]
                per_window[k] = (best[row, :n], probs[row, :n])
        out = [(np.zeros(0, np.int64), np.zeros((0, len(self.model.tags)), np.float32))
               for _ in texts]
        for i, ks in itertools.groupby(range(len(jobs)), key=lambda k: jobs[k][0]):
            ks = list(ks)
            owners = window_owners([(jobs[k][1], jobs[k][2]) for k in ks])
            parts = [(per_window[k], lo - jobs[k][1], hi - jobs[k][1])
                     for k, (lo, hi) in zip(ks, owners)]
            out[i] = (np.concatenate([tags[a:b] for (tags, _), a, b in parts]),
                      np.concatenate([probs[a:b] for (_, probs), a, b in parts]))
        return out

    def entities(self, texts: Sequence[str], *, batch_size: int | None = None
                 ) -> list[list[Entity]]:
        found = []
        for text, (tags, probs) in zip(texts, self.tag_texts(texts, batch_size=batch_size)):
            ents = []
            for span in tags_to_spans(tags, scheme=self.model.scheme, mode="lenient"):
                score = sum(probs[span.start:span.end]) / (span.end - span.start)
                ents.append(Entity(span.start, span.end, span.label, text[span.start:span.end],
                                   round(min(1.0, max(0.0, score)), 6)))
            found.append(ents)
        return found
