"""cner: Chinese named-entity recognition with character-level BERT+CRF."""
from cner.data.example import Example
from cner.data.formats import Corpus, read_corpus
from cner.errors import CnerError, InputError
from cner.schemes import Span

__all__ = ["CnerError", "Corpus", "Example", "InputError", "Span", "read_corpus"]
__version__ = "0.1.0"
