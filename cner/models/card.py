"""The model card: ``README.md`` in every model directory (and so on the hub page).

It says what the model does (task, labels and scheme), what it is (encoder, head, features,
normalisation), where it comes from (the training files with their SHA-256, the exact command,
the package versions: `cner.models.metadata.Provenance`), how well it did (the dev metrics per
type or label saved with it) and how to load it with cner and, where that works, with
transformers. This module owns the text, one function a section; it is made from the values
of the directory's own files only, so `cner.models.modeldir.render_card` can write it again
for another name (`cner push` does, with the hub id).
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from cner.models.bilstm import MODEL_TYPE
from cner.models.metadata import NER, ModelMeta

PLACEHOLDER = "path/to/model"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _encoder_line(config: dict, run_config) -> str:
    source = getattr(getattr(run_config, "model", None), "encoder", None)
    if config.get("model_type") == MODEL_TYPE:
        text = (f"character BiLSTM (cner): embeddings {config.get('embedding_size')}, hidden "
                f"{config.get('hidden_size')} (both directions), {config.get('num_layers')} "
                f"layer(s), vocabulary {config.get('vocab_size'):,}")
    else:
        text = (f"{config.get('model_type', '?')} transformer: hidden {config.get('hidden_size')}, "
                f"{config.get('num_hidden_layers')} layer(s), {config.get('num_attention_heads')} "
                f"attention heads, vocabulary {config.get('vocab_size', 0):,}")
    if source == "scratch":
        text += "; trained from scratch (random initialisation)"
    elif source and source != "bilstm":
        text += f"; initialised from `{source}`"
    return text


def _entity_types(tags: list[str]) -> list[str]:
    return sorted({t.partition("-")[2] for t in tags if t != "O" and "-" in t})


@dataclass(frozen=True)
class _Card:
    """What the sections read: the model's files, and what follows from them."""

    meta: ModelMeta
    config: dict  # config.json
    metrics: dict | None
    run_config: object | None
    model_ref: str

    @property
    def ner(self) -> bool:
        return self.meta.task == NER

    @property
    def bilstm(self) -> bool:
        return self.config.get("model_type") == MODEL_TYPE

    @property
    def token_classifier(self) -> bool:
        architectures = self.config.get("architectures") or []
        return bool(architectures) and architectures[0].endswith("ForTokenClassification")

    @property
    def used(self) -> list[str]:
        """The character features the model adds, in words."""
        features = self.meta.features
        return [name for name, on in (
            ("character bigrams", features and features.bigrams),
            ("jieba word boundaries", features and features.word_boundaries),
            ("jieba dictionary matches", features and features.lexicon)) if on]

    @property
    def ref(self) -> str:
        """``model_ref`` as a Python string literal."""
        return json.dumps(self.model_ref, ensure_ascii=False)


def model_card(meta: ModelMeta, config: dict, metrics: dict | None, *, run_config=None,
               model_ref: str = PLACEHOLDER) -> str:
    """The ``README.md`` of a model directory; ``config``: its ``config.json`` values;
    ``model_ref``: how the snippets name the model (its directory, or its hub id)."""
    card = _Card(meta, config, metrics, run_config, model_ref)
    lines = []
    for section in (_front_matter, _task, _model, _training_data, _metrics, _how_it_was_made,
                    _use_with_cner, _use_with_transformers, _files):
        lines += section(card)
    return "\n".join(lines) + "\n"


def _front_matter(card: _Card) -> list[str]:
    """The hub's YAML header (language, pipeline, tags), the title and, for a BiLSTM model,
    the warning that transformers cannot load it."""
    meta, ner = card.meta, card.ner
    tags = ["cner", "chinese"] + (["ner", "token-classification"] if ner else
                                  ["text-classification"])
    if meta.head == "crf":
        tags.append("crf")
    if card.bilstm:
        tags.append("bilstm")
    lines = ["---", "language: zh", "library_name: cner",
             f"pipeline_tag: {'token-classification' if ner else 'text-classification'}",
             "tags:"] + [f"- {t}" for t in tags] + ["---", ""]
    what = "named-entity recognition" if ner else f"{meta.head} text classification"
    lines += [f"# cner {what} model", ""]
    if card.bilstm:
        lines += ["**This is a cner-only model.** Its encoder is cner's character BiLSTM, which "
                  "transformers has no class for: `AutoModel.from_pretrained` refuses it "
                  "(model type `cner-bilstm`). Load it with cner (below).", ""]
    return lines


def _task(card: _Card) -> list[str]:
    meta = card.meta
    lines = ["## Task", ""]
    if card.ner:
        types = _entity_types(meta.labels)
        lines += [f"Named-entity recognition with one tag per character, tag scheme "
                  f"`{(meta.scheme or 'bio').upper()}`.",
                  f"Entity types ({len(types)}): {', '.join(f'`{t}`' for t in types) or 'none'}.",
                  f"Tags ({len(meta.labels)}, in the order of the tag layer's outputs): "
                  + ", ".join(f"`{t}`" for t in meta.labels) + "."]
    else:
        options = meta.options
        if meta.head == "regression":
            lines.append("Regression: one value per text (or text pair).")
        else:
            lines.append(f"Labels ({len(meta.labels)}, in output order): "
                         + ", ".join(f"`{t}`" for t in meta.labels) + ".")
        if options is not None:
            lines.append(f"Task `{options.task}`; long texts: `{options.truncation}`"
                         + (f" (pooling `{options.pooling}`)" if options.truncation == "chunks"
                            else "") + ".")
    return lines + [""]


# a classifier's text vector, by `ClassifierOptions.token_pooling`
_TEXT_VECTOR = {"cls": "the `[CLS]` state (`last_hidden_state[:, 0]`)",
                "mean": "the mean of `last_hidden_state` over the real positions",
                "max": "the maximum of `last_hidden_state` over the real positions"}


def _model(card: _Card) -> list[str]:
    meta, used = card.meta, card.used
    return ["## Model", "",
            f"- Encoder: {_encoder_line(card.config, card.run_config)}.",
            "- Head: " + ("CRF (constrained transitions, Viterbi decoding)"
                          if meta.head == "crf" else meta.head)
            + (" over a linear tag layer." if card.ner else
               " over " + _TEXT_VECTOR[meta.options.token_pooling] + "."),
            f"- Input features: {', '.join(used) if used else 'characters only'}.",
            f"- One position per character; look-up normalisation: "
            f"lower-case {'on' if meta.lowercase else 'off'}, full-width to half-width "
            f"{'on' if meta.halfwidth else 'off'}.",
            f"- Windows of {meta.max_length} positions"
            + (f", overlapping by {meta.overlap} characters." if meta.overlap else "."), ""]


def _training_data(card: _Card) -> list[str]:
    provenance = card.meta.provenance
    lines = ["## Training data", ""]
    if provenance is not None and provenance.data:
        lines += ["| split | file | SHA-256 | bytes |", "|---|---|---|---|"]
        lines += [f"| {d.split} | `{_cell(d.path)}` | `{d.sha256}` | {d.bytes:,} |"
                  for d in provenance.data]
    else:
        lines.append("Not recorded (saved without training provenance).")
    return lines + [""]


def _metrics(card: _Card) -> list[str]:
    lines = ["## Metrics (development set, at the saved step)", ""]
    metrics = card.metrics
    if not metrics:
        return lines + ["No metrics were saved with this model (trained without a dev set).", ""]
    rows = metrics.get("per_type") or metrics.get("per_label")
    if rows:
        name = "type" if "per_type" in metrics else "label"
        lines += [f"| {name} | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for label, row in sorted(rows.items()):
            lines.append(f"| {_cell(label)} | {_fmt(row.get('precision', 0.0))} | "
                         f"{_fmt(row.get('recall', 0.0))} | {_fmt(row.get('f1', 0.0))} | "
                         f"{row.get('support', '')} |")
        lines.append("")
    summary = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float))
               and not isinstance(v, bool)]
    if summary:
        lines.append("Overall: " + ", ".join(f"{k} {_fmt(v)}" for k, v in summary) + ".")
    return lines + [""]


def _how_it_was_made(card: _Card) -> list[str]:
    provenance = card.meta.provenance
    lines = ["## How it was made", ""]
    if provenance is None:
        return lines
    if provenance.command:
        lines += ["Command:", "", "```sh", shlex.join(provenance.command), "```", ""]
    else:
        lines += ["Trained through cner's Python API (no command line); the run's configuration "
                  "is `cner_config.yaml`." if card.run_config is not None else
                  "Saved through cner's Python API (no command line).", ""]
    if provenance.versions:
        lines += ["| package | version |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in provenance.versions.items()]
        lines.append("")
    if provenance.created:
        lines += [f"Saved {provenance.created}.", ""]
    return lines


def _use_with_cner(card: _Card) -> list[str]:
    ner, ref, model_ref = card.ner, card.ref, card.model_ref
    lines = ["## Use with cner", "", "```python", "from cner import "
             + ("Tagger" if ner else "Classifier"), ""]
    if ner:
        lines += [f"tagger = Tagger.load({ref})", 'print(tagger("张伟在北京大学工作。"))']
    else:
        lines += [f"clf = Classifier.load({ref})", 'print(clf("这家酒店很干净，服务也好。"))']
    lines += ["```", "", "```sh"]
    lines.append(f"cner annotate texts.txt --model {model_ref} -o entities.jsonl" if ner else
                 f"cner glue predict --model {model_ref} --input texts.tsv -o predictions.jsonl")
    return lines + ["```", "",
                    "`--model` and `load` take a model directory or a Hugging Face hub id "
                    "(`owner/name`, downloaded once into the hub cache).", ""]


def _use_with_transformers(card: _Card) -> list[str]:
    lines = ["## Use with transformers", ""]
    if card.bilstm:
        return lines + ["Not possible: the BiLSTM encoder exists only in cner. "
                        "`AutoTokenizer.from_pretrained` works (one token per character, the "
                        "ids cner uses).", ""]
    lines += ["`AutoTokenizer` gives one token per character (Chinese, Latin letters and "
              "digits alike, whitespace included) with the ids cner uses; special tokens "
              "written literally in a text (`[CLS]`, `[SEP]`, ...) are read as those tokens.",
              ""]
    return lines + (_token_classifier(card) if card.token_classifier else _encoder_only(card))


def _token_classifier(card: _Card) -> list[str]:
    """Loading a plain NER model as transformers' token classifier, and how its output
    differs from cner's."""
    ref, meta = card.ref, card.meta
    scheme = meta.scheme or "bio"
    return ["```python", "from transformers import AutoModelForTokenClassification, "
            "AutoTokenizer, pipeline", "",
            f"tokenizer = AutoTokenizer.from_pretrained({ref})",
            f"model = AutoModelForTokenClassification.from_pretrained({ref})",
            'inputs = tokenizer("张伟在北京大学工作。", return_tensors="pt")',
            "emissions = model(**inputs).logits[0, 1:-1]  # one row per character",
            'ner = pipeline("token-classification", model=model, tokenizer=tokenizer, '
            'aggregation_strategy="simple")', "```", "",
            "The logits are cner's emissions"
            + (" before the CRF. transformers takes the best tag of each character "
               "on its own, without the CRF's transitions and constraints, so its "
               "entities can differ from cner's (Viterbi decoding); use cner for the "
               "model's actual output." if meta.head == "crf" else
               "; cner also forbids invalid tag sequences, transformers does not.")
            + (" The pipeline reads `B-`/`I-` tags; this model's scheme is "
               f"`{scheme.upper()}`." if scheme not in ("bio", "iob2") else ""), ""]


def _encoder_only(card: _Card) -> list[str]:
    """Loading the encoder alone, and why transformers cannot compute the rest."""
    ref = card.ref
    lines = ["```python", "from transformers import AutoModel, AutoTokenizer", "",
             f"tokenizer = AutoTokenizer.from_pretrained({ref})",
             f"encoder = AutoModel.from_pretrained({ref})  # the trained encoder", "```", ""]
    if card.ner:
        return lines + ["The encoder alone: this model adds " + ", ".join(card.used)
                        + " to the input embeddings (`cner_head.safetensors`), which "
                        "transformers does not compute, so use cner to tag.", ""]
    vector = _TEXT_VECTOR[card.meta.options.token_pooling]
    return lines + ["The classifier reads " + vector + " directly (no "
                    "pooler): `logits = vector @ W.T + b` with `W`, `b` "
                    "= `cner_classifier.weight`, `cner_classifier.bias` in "
                    "`model.safetensors`. `AutoModelForSequenceClassification` would "
                    "use BERT's pooler instead (saved untrained, as the identity) and a "
                    "fresh classifier, so it does not reproduce this model.", ""]


def _files(card: _Card) -> list[str]:
    ner, features = card.ner, card.meta.features
    return ["## Files", "",
            "`model.safetensors` (encoder, under transformers' names, and the "
            + ("tag" if ner else "class") + " layer), "
            + ("`cner_head.safetensors` (CRF transitions"
               + (", feature embeddings" if card.used else "") + "), " if ner else "")
            + "`config.json`, `vocab.txt`, `tokenizer.json`, `tokenizer_config.json`, "
            "`cner_model.json` (cner's description: labels, scheme, normalisation, "
            "provenance)"
            + (", `bigrams.txt`" if features and features.bigrams else "")
            + (", `cner_config.yaml` (the training configuration)"
               if card.run_config is not None else "")
            + (", `metrics.json`" if card.metrics is not None else "") + "."]
