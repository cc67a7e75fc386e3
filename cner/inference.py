"""Batched, windowed prediction and the `Tagger` API.

Texts are cut into overlapping windows (`cner.encoding.plan_windows`), all windows of a chunk
of texts are sorted by length and batched, the CRF decodes each batch at once, and the
per-window tags are stitched back (`merge_window_tags`: each character takes the tag of the
window where it sits furthest from an edge), so an entity that crosses a window edge is
found once. ``Entity.score`` is the mean, over the entity's characters, of the CRF marginal
probability (forward-backward) of the tag each character was given.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cner.encoding import CharVocab, Featurizer, plan_windows, window_owners
from cner.schemes import tags_to_spans


@dataclass(frozen=True)
class Entity:
    """An entity in a text: ``text == document[start:end]`` (end exclusive, code points)."""

    start: int
    end: int
    label: str
    text: str
    score: float


def collate_inputs(windows: Sequence[dict[str, list[int]]], featurizer: Featurizer
                   ) -> dict[str, torch.Tensor]:
    """Right-pad windows (``[CLS] chars [SEP]`` per feature) into model inputs:
    each feature long ``(B, L + 2)``, ``attention_mask`` long ``(B, L + 2)``, ``char_mask``
    bool ``(B, L)``."""
    width = max(len(w["input_ids"]) for w in windows)
    batch = {}
    for key in featurizer.keys:
        tensor = torch.full((len(windows), width), featurizer.pad_id(key), dtype=torch.long)
        for row, window in enumerate(windows):
            tensor[row, :len(window[key])] = torch.tensor(window[key], dtype=torch.long)
        batch[key] = tensor  # shape: (B, L+2)
    lengths = torch.tensor([len(w["input_ids"]) - 2 for w in windows])
    batch["attention_mask"] = (torch.arange(width) < (lengths + 2)[:, None]).long()
    batch["char_mask"] = torch.arange(width - 2) < lengths[:, None]  # shape: (B, L)
    return batch


def plan_batches(widths: Sequence[int], *, max_rows: int, max_positions: int,
                 overhead: float) -> list[tuple[int, int]]:
    """Cut windows sorted by decreasing width into batches ``[start, end)`` of minimum cost.

    A batch costs ``overhead`` plus its padded size (rows x its first width); a batch holds
    at most ``max_rows`` rows and ``max_positions`` padded positions (a single window may
    exceed it). Exact dynamic programming over the cut points, O(n x max_rows). On the first
    100 MSRA test sentences and bert-base's overhead, padding fell from 24% to 2% of the real
    positions against batches filled up to the limits.
    """
    n = len(widths)
    best = [0.0] + [float("inf")] * n  # best[j]: cheapest way to batch widths[:j]
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, max(-1, j - 1 - max_rows), -1):
            if j - i > 1 and (j - i) * widths[i] > max_positions:
                break
            cost = best[i] + overhead + (j - i) * widths[i]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    batches = []
    while n > 0:
        batches.append((cut[n], n))
        n = cut[n]
    return batches[::-1]


def encoder_flops_per_position(model) -> float:
    """Matrix-product FLOPs of the encoder per position, without attention: 2 x its
    parameters outside the embeddings (bert-base: ~170 M)."""
    encoder = getattr(model, "encoder", model)
    named = encoder.named_parameters() if isinstance(encoder, torch.nn.Module) else ()
    return 2.0 * sum(p.numel() for name, p in named if "embedding" not in name)


def batch_overhead_positions(model) -> float:
    """A model call's fixed cost in positions: ~2 GFLOP over the encoder's FLOPs per
    position; 8 to 512."""
    return float(min(512, max(8, 2e9 / max(1.0, encoder_flops_per_position(model)))))


class Predictor:
    """Runs a `TokenTagger` over many texts: windows, length-sorted batches, merging."""

    def __init__(self, model, vocab: CharVocab | Featurizer, *, max_length: int, overlap: int,
                 batch_size: int = 64, max_positions: int = 2048,
                 device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        self.model = model
        self.featurizer = vocab if isinstance(vocab, Featurizer) else Featurizer(vocab)
        self.max_chars = max_length - 2
        self.overlap = min(overlap, self.max_chars - 1)
        self.batch_size = batch_size
        # Windows are sorted longest first and cut into batches by `plan_batches`, which
        # trades padding against the fixed cost of a model call (in positions' worth of
        # compute: estimated as ~5 ms of Python and small kernels at ~400 GFLOP/s).
        self.max_positions = max_positions
        self.batch_overhead = batch_overhead_positions(model)
        self.device = torch.device(device)
        self.precision = precision
        self.compiled = False  # set by Tagger.load(compile=True): batches keep 2+ rows

    def _autocast(self):
        enabled = self.precision in ("bf16", "fp16")
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=enabled)

    def _batches(self, order: list[int], jobs: list[tuple[int, int, int]]) -> Iterator[list[int]]:
        widths = [jobs[k][2] - jobs[k][1] + 2 for k in order]  # [CLS] and [SEP] included
        for start, end in plan_batches(widths, max_rows=self.batch_size,
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

    def tag_texts(self, texts: Sequence[str]) -> list[tuple[list[str], list[float]]]:
        """Per text: one tag and the marginal probability of that tag per character."""
        jobs = []  # (text index, window start, window end)
        for i, text in enumerate(texts):
            if text:
                jobs.extend((i, s, e) for s, e in plan_windows(len(text), max_chars=self.max_chars,
                                                               overlap=self.overlap))
        encoded = {i: self.featurizer.features(text) for i, text in enumerate(texts) if text}
        order = sorted(range(len(jobs)), key=lambda k: jobs[k][2] - jobs[k][1], reverse=True)
        results: list = [None] * len(jobs)
        tags = self.model.tags
        pending = []  # per batch: (window indices, emissions, char_mask)
        for chunk in self._batches(order, jobs):
            windows = [self.featurizer.window(encoded[jobs[k][0]], jobs[k][1], jobs[k][2])
                       for k in chunk]
            if self.compiled and len(windows) == 1:
                windows = windows * 2  # a batch of one would compile again; row 1 is unused
            inputs = {k: t.to(self.device) for k, t in collate_inputs(windows, self.featurizer).items()}
            with torch.inference_mode(), self._autocast():
                scores = self.model.emissions(**inputs)  # shape: (B, L, T)
            pending.append((chunk, scores[:len(chunk)].float(), inputs["char_mask"][:len(chunk)]))
        if pending:
            decoded, best, chosen = self._decode(pending)
            for row, k in enumerate(decoded):
                n = jobs[k][2] - jobs[k][1]
                results[k] = ([tags[t] for t in best[row][:n]], chosen[row][:n])
        out: list[tuple[list[str], list[float]]] = [([], []) for _ in texts]
        by_text = itertools.groupby(range(len(jobs)), key=lambda k: jobs[k][0])
        for i, ks in by_text:
            ks = list(ks)
            spans = [(jobs[k][1], jobs[k][2]) for k in ks]
            merged_tags, merged_probs = [], []
            for k, (start, _), (lo, hi) in zip(ks, spans, window_owners(spans)):
                merged_tags.extend(results[k][0][lo - start:hi - start])
                merged_probs.extend(results[k][1][lo - start:hi - start])
            out[i] = (merged_tags, merged_probs)
        return out

    def entities(self, texts: Sequence[str]) -> list[list[Entity]]:
        found = []
        for text, (tags, probs) in zip(texts, self.tag_texts(texts)):
            ents = []
            for span in tags_to_spans(tags, scheme=self.model.scheme, mode="lenient"):
                score = sum(probs[span.start:span.end]) / (span.end - span.start)
                ents.append(Entity(span.start, span.end, span.label, text[span.start:span.end],
                                   round(min(1.0, max(0.0, score)), 6)))
            found.append(ents)
        return found


class Tagger:
    """A trained NER model ready to annotate text.

    >>> tagger = Tagger.load("runs/tiny/model")          # doctest: +SKIP
    >>> tagger("张伟在北京大学工作。")                      # doctest: +SKIP
    [Entity(start=0, end=2, label='PER', text='张伟', score=0.98), ...]
    """

    def __init__(self, predictor: Predictor, meta) -> None:
        self.predictor = predictor
        self.meta = meta
        self.precision: str | None = None  # set by `load`
        self._unpack: Callable[[], None] = lambda: None  # undoes `_pack`

    @classmethod
    def load(cls, model_dir: str | Path, *, device: str = "cpu", batch_size: int = 64,
             precision: str = "auto", compile: bool = False) -> Tagger:
        """Load a model directory for annotation.

        ``precision``: ``auto`` (bf16 where the CPU or GPU supports it), ``bf16``, ``fp16``
        (GPU) or ``fp32``. Half precision casts the weights once rather than per call; the
        CRF always decodes in float32. ``compile``: compile the encoder with TorchInductor
        (`cner.models.compile`): seconds to a minute at load, faster on large inputs. Else,
        in bf16 on CPU, the encoder's linear layers run on oneDNN-packed copies of their
        weights (`cner.models.packing`; one more copy of those weights in memory).
        """
        from cner.devices import resolve_device, resolve_precision
        from cner.models.storage import load_tagger_dir

        torch_device = resolve_device(device)
        precision = resolve_precision(precision, torch_device)
        model, featurizer, meta = load_tagger_dir(model_dir, device=torch_device)
        if torch_device.type == "cpu" and hasattr(model.encoder, "set_attn_implementation"):
            # Measured on 2 cores, MSRA sentences (~75 positions): plain matmul-softmax
            # attention beats the CPU SDPA kernel, by 3-5% eager and 5-8% compiled.
            model.encoder.set_attn_implementation("eager")
        if precision != "fp32":
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            for name, part in model.named_children():
                if name != "crf":  # the CRF's sums of exponentials stay in float32
                    part.to(dtype)
        predictor = Predictor(model, featurizer, max_length=meta.max_length, overlap=meta.overlap,
                              batch_size=batch_size, device=torch_device)
        tagger = cls(predictor, meta)
        tagger.precision = precision
        if compile:
            tagger.compile()
        else:
            tagger._pack()
        return tagger

    def _pack(self) -> None:
        """Uncompiled bf16 on CPU: pre-packed linear weights (`cner.models.packing`)."""
        from cner.models.packing import pack_linear_layers

        encoder = getattr(self.predictor.model, "encoder", None)
        if self.precision == "bf16" and self.predictor.device.type == "cpu" and encoder is not None:
            self._unpack = pack_linear_layers(encoder)

    def compile(self) -> Tagger:
        """Compile the encoder with TorchInductor, in place (`cner.models.compile`); a
        failure is a `ModelError` and leaves the tagger as it was. Returns the tagger."""
        from cner.errors import ModelError
        from cner.models.compile import compile_encoder

        self._unpack()  # TorchInductor packs the weights itself
        self._unpack = lambda: None
        restore = compile_encoder(self.predictor.model)
        self.predictor.compiled = True
        try:  # compile now, so that a failure is one clear error rather than a later crash
            self.predictor.tag_texts(["北京欢迎你", "上海"])
        except Exception as exc:  # TorchInductor raises many types (compiler missing, ...)
            restore()
            self.predictor.compiled = False
            self._pack()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"compiling the model failed ({first[:200]}); run without "
                             "--compile (TorchInductor needs a working C++ compiler on CPU)"
                             ) from None
        return self

    @property
    def labels(self) -> list[str]:
        return sorted({t.partition("-")[2] for t in self.meta.labels if t != "O"})

    def __call__(self, text: str) -> list[Entity]:
        return self.predictor.entities([text])[0]

    def pipe(self, texts: Iterable[str], *, chunk_size: int | None = None) -> Iterator[list[Entity]]:
        """Lazily annotate a stream of texts, in order, holding one chunk in memory at a time."""
        size = chunk_size or self.predictor.batch_size * 8
        iterator = iter(texts)
        while chunk := list(itertools.islice(iterator, size)):
            yield from self.predictor.entities(chunk)

    def annotate_frame(self, df, text_column: str = "text", id_column: str | None = None):
        """Entities of every row of a pandas DataFrame, in long format.

        Returns a DataFrame with columns ``doc_id, start, end, label, text, score``, one row
        per entity; ``doc_id`` is the value of ``id_column``, else the row's 1-based position.
        Missing (NaN/None) texts have no entities.
        """
        import pandas as pd

        from cner.errors import InputError

        for name, option in ((text_column, "text_column"), (id_column, "id_column")):
            if name is not None and name not in df.columns:
                raise InputError(f"no column {name!r} ({option}); the columns are: "
                                 f"{', '.join(map(str, df.columns))}")
        ids = (df[id_column].tolist() if id_column is not None
               else list(range(1, len(df) + 1)))
        texts = []
        for position, value in enumerate(df[text_column].tolist(), start=1):
            if not isinstance(value, str):
                if not (value is None or pd.api.types.is_scalar(value) and pd.isna(value)):
                    raise InputError(f"row {position}: column {text_column!r} holds "
                                     f"{type(value).__name__}, expected text")
                value = ""
            texts.append(value)
        rows = [(doc_id, e.start, e.end, e.label, e.text, e.score)
                for doc_id, entities in zip(ids, self.pipe(texts)) for e in entities]
        frame = pd.DataFrame(rows, columns=["doc_id", "start", "end", "label", "text", "score"])
        return frame.astype({"start": "int64", "end": "int64", "score": "float64"})
