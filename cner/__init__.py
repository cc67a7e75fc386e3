"""cner: Chinese named-entity recognition with character-level BERT+CRF.

The heavy parts (torch, transformers) load on first use, so ``import cner`` and the corpus
commands stay fast.
"""
from cner.data.example import Example
from cner.data.formats import Corpus, read_corpus
from cner.errors import CnerError, InputError
from cner.schemes import Span

__version__ = "0.1.0"

_LAZY = {
    "Tagger": ("cner.inference.tagger", "Tagger"),
    "Entity": ("cner.inference.predictor", "Entity"),
    "Classifier": ("cner.inference.classifier", "Classifier"),
    "annotate_files": ("cner.inference.annotate", "annotate_files"),
    "train_ner": ("cner.tasks.ner", "train_ner"),
    "evaluate_ner": ("cner.tasks.ner", "evaluate_ner"),
    "load_config": ("cner.config", "load_config"),
}

__all__ = ["Classifier", "CnerError", "Corpus", "Entity", "Example", "InputError", "Span",
           "Tagger", "annotate_files", "evaluate_ner", "load_config", "read_corpus", "train_ner"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'cner' has no attribute {name!r}")
