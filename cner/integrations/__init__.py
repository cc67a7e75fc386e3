"""Bridges to other libraries, each an optional extra (``pip install "cner[spacy]"``).

`cner.integrations.spacy`: cner's tagger as the spaCy pipeline component ``cner_ner`` (the
``DocBin`` side, below inference, is `cner.data.spacy_docbin`). Importing it needs spaCy;
`require_spacy` says how to install it in one line.
"""
from __future__ import annotations

from cner.data.spacy_docbin import SPACY_HINT, require_spacy

__all__ = ["SPACY_HINT", "require_spacy"]
