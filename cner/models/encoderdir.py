"""The directory ``cner pretrain`` writes: a pre-trained encoder any cner task starts from.

Files:

* ``model.safetensors``: for a BERT, ``BertForMaskedLM``'s weights under its names
  (``bert.*``, ``cls.predictions.*``; the output layer is tied to the input embeddings), so
  ``AutoModelForMaskedLM.from_pretrained(DIR)`` loads the masked LM and ``AutoModel`` the
  encoder; for the BiLSTM, the encoder's weights (cner-only, like its ``config.json``).
* ``cner_mlm_head.safetensors``: what ``model.safetensors`` does not hold: the BiLSTM's
  output layer, the sentence-order / next-sentence head (if trained).
* ``config.json`` (``architectures: [BertForMaskedLM]``, or the BiLSTM's sizes), ``vocab.txt``,
  ``tokenizer.json``, ``tokenizer_config.json`` (`cner.models.tokenizer`: one token per
  character for ``AutoTokenizer``), ``cner_pretrain.json`` (what text, how it was masked, steps,
  characters, the held-out MLM loss and accuracy, versions) and the model card ``README.md``.

Every task config accepts the directory as ``model.encoder: DIR`` (`cner.models.encoders`
loads the BERT with ``AutoModel``, the BiLSTM with `load_bilstm_encoder`), with its
vocabulary. The directory is written under a temporary name and renamed into place.
"""
from __future__ import annotations

import copy
import json
import shlex
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from cner.encoding.vocab import CharVocab
from cner.errors import ModelError
from cner.fileio import atomic_write
from cner.models.card import _fmt
from cner.models.modeldir import CARD, TOKENIZER, TOKENIZER_CONFIG, VOCAB, WEIGHTS, new_dir
from cner.models.modeldir import ENCODER_CONFIG as CONFIG
from cner.models.tokenizer import save_tokenizer
from cner.models.weights import load_state, misfit

# The two MLM heads (cner.models.mlm): BertForMaskedLM's, and a linear one for the BiLSTM.
BERT_HEAD, LINEAR_HEAD = "bert", "linear"

# The file names a model directory uses too (cner.models.modeldir owns them), and the two
# an encoder directory adds: its MLM head's weights and what pre-training recorded.
HEAD_WEIGHTS = "cner_mlm_head.safetensors"
INFO = "cner_pretrain.json"
BERT_PREFIX = "bert."
HEAD_PREFIX = "cls.predictions."
CNER_ONLY = ("a cner-only encoder (character BiLSTM): transformers has no class for it; use it "
             "as model.encoder in a cner config")


def write_tokenizer(vocab: CharVocab, max_length: int, directory: Path) -> None:
    """``vocab.txt``, ``tokenizer.json`` and ``tokenizer_config.json`` in ``directory``."""
    vocab.save(directory / VOCAB)
    save_tokenizer(vocab, max_length, tokenizer=directory / TOKENIZER,
                   config=directory / TOKENIZER_CONFIG)


# --- weights -----------------------------------------------------------------------------------

def split_state(model) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(model.safetensors, cner_mlm_head.safetensors)`` tensors of a `MaskedLanguageModel`."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    main: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    bert = model.kind == BERT_HEAD
    for name, tensor in state.items():
        if name.startswith("encoder."):
            key = name[len("encoder."):]
            if key.startswith("pooler."):
                continue
            main[(BERT_PREFIX if bert else "") + key] = tensor
        elif bert and name.startswith("transform."):
            main[HEAD_PREFIX + name] = tensor
        elif bert and name == "bias":
            main[HEAD_PREFIX + "bias"] = tensor
        elif bert and name == "decoder.weight":
            main[HEAD_PREFIX + "decoder.weight"] = tensor
        else:
            head[name] = tensor
    return main, head


def _write(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})


def load_head(model, directory: Path, *, pair_only: bool = False) -> None:
    """Load ``cner_mlm_head.safetensors`` (if any) into ``model``'s head: the BiLSTM's output
    layer and, when both have one, the pair head (``pair_only``: that alone)."""
    from safetensors.torch import load_file

    path = Path(directory) / HEAD_WEIGHTS
    if not path.is_file():
        return
    saved = load_file(str(path))
    own = model.state_dict()
    wanted = {k: v for k, v in saved.items() if k in own and (
        not pair_only or k.startswith("pair_head."))}
    bad = misfit(own, wanted)
    if bad:
        raise ModelError(f"{path}: {bad[0]} is {bad[1]}, the model's is {bad[2]}")
    model.load_state_dict(wanted, strict=False)


# --- config.json -------------------------------------------------------------------------------

def config_values(model) -> dict:
    cner = {"task": "masked-lm", "written_by": "cner pretrain",
            "use_with": "model.encoder: DIR in any cner config"}
    if model.kind != BERT_HEAD:
        values = asdict(model.encoder.config)
        values.update(architectures=["CnerBiLSTM"], cner_only=CNER_ONLY, cner=cner)
        return values
    config = copy.deepcopy(model.encoder.config)
    config.architectures = ["BertForMaskedLM"]
    config.tie_word_embeddings = model.tied
    values = config.to_diff_dict()
    values["tie_word_embeddings"] = model.tied
    values["cner"] = cner
    return values


def is_bilstm_dir(directory: str | Path) -> bool:
    """Whether ``directory`` holds a BiLSTM encoder written by ``cner pretrain``."""
    from cner.models.bilstm import MODEL_TYPE

    path = Path(directory) / CONFIG
    if not path.is_file() or (Path(directory) / "cner_model.json").is_file():
        return False
    try:
        return json.loads(path.read_text("utf-8")).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def load_bilstm_encoder(directory: str | Path) -> nn.Module:
    """The BiLSTM encoder of a ``cner pretrain`` directory, with its weights."""
    from safetensors.torch import load_file

    from cner.models.bilstm import BiLSTMConfig, BiLSTMEncoder

    directory = Path(directory)
    try:
        values = json.loads((directory / CONFIG).read_text("utf-8"))
        names = {f.name for f in fields(BiLSTMConfig)}
        encoder = BiLSTMEncoder(BiLSTMConfig.from_dict(
            {k: v for k, v in values.items() if k in names}))
        state = load_file(str(directory / WEIGHTS))
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"cannot load the BiLSTM encoder in {directory}: {exc}") from None
    load_state(encoder, directory / WEIGHTS, state=state)
    return encoder


# --- the directory -----------------------------------------------------------------------------

def save_encoder_dir(model, vocab: CharVocab, directory: str | Path, *, max_length: int,
                     info: dict) -> Path:
    """Write the encoder directory (see the module docstring); ``info`` goes to
    ``cner_pretrain.json`` and the model card."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    rows = model.encoder.get_input_embeddings().num_embeddings
    if len(vocab) > rows:
        raise ModelError(f"the vocabulary has {len(vocab):,} tokens but the encoder's "
                         f"embedding has {rows:,} rows")
    values = config_values(model)
    with new_dir(directory) as tmp:
        main, head = split_state(model)
        _write(main, tmp / WEIGHTS)
        if head:
            _write(head, tmp / HEAD_WEIGHTS)
        with atomic_write(tmp / CONFIG) as handle:
            handle.write(json.dumps(values, indent=1, ensure_ascii=False))
        write_tokenizer(vocab, max_length, tmp)
        with atomic_write(tmp / INFO) as handle:
            handle.write(json.dumps(info, indent=1, ensure_ascii=False))
        with atomic_write(tmp / CARD) as handle:
            handle.write(encoder_card(info, values))
    return directory


def update_info(directory: str | Path, **changes) -> dict:
    """Rewrite ``cner_pretrain.json`` and the card with ``changes`` (the run's totals, known
    only when it ends)."""
    directory = Path(directory)
    info = json.loads((directory / INFO).read_text("utf-8"))
    info.update(changes)
    values = json.loads((directory / CONFIG).read_text("utf-8"))
    with atomic_write(directory / INFO) as handle:
        handle.write(json.dumps(info, indent=1, ensure_ascii=False))
    with atomic_write(directory / CARD) as handle:
        handle.write(encoder_card(info, values))
    return info


# --- the model card ----------------------------------------------------------------------------
# One function a section, like `cner.models.card` (the model card of a task's model directory),
# made from ``cner_pretrain.json``'s values and ``config.json``'s alone.

@dataclass(frozen=True)
class _EncoderCard:
    """What the sections read: ``cner_pretrain.json`` and ``config.json``, and the name the
    snippets load the encoder by."""

    info: dict
    config: dict
    ref: str

    @property
    def bilstm(self) -> bool:
        return self.config.get("model_type") == "cner-bilstm"

    @property
    def arch(self) -> dict:
        return self.info.get("architecture", {})

    @property
    def pair(self) -> str:
        return self.info.get("pair_objective", "none")


def encoder_card(info: dict, config: dict, *, ref: str = "path/to/encoder") -> str:
    """``README.md`` of an encoder directory, from ``cner_pretrain.json``'s values."""
    card = _EncoderCard(info, config, ref)
    lines = []
    for section in (_front_matter, _model, _pretraining, _text, _results, _how_it_was_made,
                    _use, _files):
        lines += section(card)
    return "\n".join(lines) + "\n"


def _front_matter(card: _EncoderCard) -> list[str]:
    """The hub's YAML header, the title and, for a BiLSTM, that transformers cannot load it."""
    bilstm = card.bilstm
    lines = ["---", "language: zh", f"library_name: {'cner' if bilstm else 'transformers'}",
             "pipeline_tag: fill-mask", "tags:", "- cner", "- chinese", "- fill-mask",
             "- masked-lm"] + (["- bilstm"] if bilstm else ["- bert"]) + ["---", ""]
    lines += ["# cner pre-trained character encoder (masked LM)", ""]
    if bilstm:
        lines += ["**A cner-only encoder** (character BiLSTM): transformers has no class for "
                  "it. Fine-tune it with cner (below).", ""]
    return lines


def _model(card: _EncoderCard) -> list[str]:
    info, arch = card.info, card.arch
    if card.bilstm:
        shape = (f"- Character BiLSTM: embeddings {arch.get('embedding_size')}, hidden "
                 f"{arch.get('hidden_size')} (both directions), {arch.get('num_layers')} "
                 f"layer(s); a linear masked-LM layer.")
    else:
        shape = (f"- {arch.get('encoder', 'bert')} transformer: hidden "
                 f"{arch.get('hidden_size')}, {arch.get('num_layers')} layer(s), "
                 f"{arch.get('num_heads')} attention heads, feed-forward "
                 f"{arch.get('intermediate_size')}, {arch.get('max_position_embeddings')} "
                 "positions; BERT's masked-LM head (output layer tied to the embeddings).")
    source = info.get("initialised_from")
    return ["## Model", "", shape,
            f"- Initialised from `{source}` (continued pre-training)." if source else
            "- Trained from random initialisation.",
            f"- Vocabulary: {arch.get('vocab_size', 0):,} tokens, one per character "
            f"(look-up: lower-case {'on' if info.get('lowercase') else 'off'}, full-width "
            f"to half-width {'on' if info.get('halfwidth') else 'off'}).", ""]


def _pretraining(card: _EncoderCard) -> list[str]:
    info, pair = card.info, card.pair
    masking = info.get("masking", {})
    strategy = masking.get("strategy", "wwm")
    how = {"wwm": "whole-word masking (jieba words selected whole)",
           "char": "character masking",
           "span": f"span masking (SpanBERT: geometric span lengths in words, p = "
                   f"{masking.get('span_p')}, at most {masking.get('span_max')} words)"}
    lines = ["## Pre-training", "",
             f"- Objective: masked LM, {how.get(strategy, strategy)}; "
             f"{_pct(masking.get('ratio', 0.15))} of the positions selected, of those "
             f"{_pct(masking.get('mask_prob', 0.8))} `[MASK]`, "
             f"{_pct(masking.get('random_prob', 0.1))} a random character, the rest "
             "unchanged; a new mask every epoch."]
    if pair != "none":
        lines.append("- Plus " + ("sentence-order prediction (SOP)" if pair == "sop" else
                                  "next-sentence prediction (NSP)") + " on the `[CLS]` state.")
    return lines + [f"- Sequences of {info.get('max_length')} positions, lines of a document "
                    "packed together (never two documents in one sequence).",
                    _steps_line(info), ""]


def _text(card: _EncoderCard) -> list[str]:
    """The text files trained on, with their SHA-256, and what they made."""
    info = card.info
    lines = ["## Text", ""]
    texts = info.get("text") or []
    if texts:
        lines += ["| file | SHA-256 | characters | lines | documents |", "|---|---|---|---|---|"]
        lines += [f"| `{t['path']}` | `{t['sha256']}` | {t['characters']:,} | {t['lines']:,} | "
                  f"{t['documents']:,} |" for t in texts]
        lines.append("")
    return lines + [f"{info.get('characters', 0):,} characters in "
                    f"{info.get('sequences', 0):,} sequences; {info.get('held_out', 0):,} "
                    "sequences held out for evaluation.", ""]


def _results(card: _EncoderCard) -> list[str]:
    metrics, pair = card.info.get("metrics") or {}, card.pair
    lines = ["## Results (held-out text, at the saved step)", ""]
    if not metrics:
        return lines + ["Not evaluated (no text was held out).", ""]
    return lines + [f"MLM loss {_fmt(metrics.get('mlm_loss'))}, MLM accuracy "
                    f"{_fmt(metrics.get('mlm_accuracy'))} ({int(metrics.get('masked', 0)):,} "
                    "masked positions)"
                    + (f"; {pair.upper()} accuracy {_fmt(metrics.get('pair_accuracy'))}"
                       if "pair_accuracy" in metrics else "") + ".", ""]


def _how_it_was_made(card: _EncoderCard) -> list[str]:
    """The command and the package versions (the versions table as in the model card)."""
    info, lines = card.info, []
    if info.get("command"):
        lines += ["## How it was made", "", "```sh", shlex.join(info["command"]), "```", ""]
    if info.get("versions"):
        lines += ["| package | version |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in info["versions"].items()]
        lines.append("")
    return lines


def _use(card: _EncoderCard) -> list[str]:
    """Fine-tuning it with cner and, for a BERT, loading it with transformers."""
    ref = card.ref
    ner_config = "msra-small-cpu" if card.bilstm else "msra-small-bert-cpu"
    lines = ["## Use", "", "Fine-tune it with any cner task:", "", "```sh",
             f"cner train --config configs/{ner_config}.yaml --set model.encoder={ref}",
             f"cner sentiment train --set model.encoder={ref}",
             f"cner pretrain --config configs/pretrain-small.yaml --text more.txt --from {ref} "
             "-o runs/more",
             "```", ""]
    if card.bilstm:
        return lines
    return lines + ["With transformers:", "", "```python",
                    "from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline", "",
                    f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(ref)})",
                    f"model = AutoModelForMaskedLM.from_pretrained({json.dumps(ref)})",
                    'fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)',
                    'fill("北京是中国的首[MASK]。")', "```", "",
                    "`AutoModel.from_pretrained` gives the encoder alone (its pooler was never "
                    "trained: cner's heads read the `[CLS]` state).", ""]


def _files(card: _EncoderCard) -> list[str]:
    return ["## Files", "", "`model.safetensors`, "
            + ("`cner_mlm_head.safetensors`, " if card.bilstm or card.pair != "none" else "")
            + "`config.json`, `vocab.txt`, `tokenizer.json`, `tokenizer_config.json`, "
            "`cner_pretrain.json` (this card's facts, machine-readable)."]


def _steps_line(info: dict) -> str:
    if "steps" not in info:
        line = "- Steps: the run had not ended when this was written"
    else:
        line = (f"- Steps: {info.get('best_step', info['steps']):,} (the saved model) of "
                f"{info['steps']:,} run")
        if info.get("trained_characters"):
            line += f"; {info['trained_characters']:,} characters trained on"
        seconds = info.get("seconds")
        if seconds:
            line += (f" in {seconds / 60:.1f} minutes" if seconds >= 60 else
                     f" in {seconds:.0f} seconds")
    if info.get("precision"):
        line += f"; precision {info['precision']}"
    return line + "."


def _pct(value) -> str:
    return f"{value * 100:g}%"
