"""Bridges to other libraries, each an optional extra (``pip install "cner[spacy]"``).

`cner.integrations.spacy`: corpora as spaCy ``DocBin`` files and cner's tagger as the spaCy
pipeline component ``cner_ner``. Importing it needs spaCy; `require_spacy` says how to install
it in one line.
"""
from __future__ import annotations

from cner.errors import ConfigError

SPACY_HINT = 'pip install "cner[spacy]"'


def require_spacy(what: str = "this") -> None:
    """A one-line `ConfigError` when spaCy is not installed."""
    try:
        import spacy  # noqa: F401
    except ImportError:
        raise ConfigError(f"{what} needs spaCy, which is not installed: {SPACY_HINT}") from None


__all__ = ["SPACY_HINT", "require_spacy"]
