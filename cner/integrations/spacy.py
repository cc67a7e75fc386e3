"""cner's tagger as a spaCy pipeline component (``cner_ner``); corpora as ``DocBin`` files and
the placement of character offsets on tokens live below, in `cner.data.spacy_docbin`.

Entities are placed with ``Doc.char_span(start, end, alignment_mode=...)``
(`cner.data.spacy_docbin.place_entities`); those that do not align are counted, never silently
moved or lost.

The factory ``cner_ner``::

      nlp = spacy.blank("zh")
      nlp.add_pipe("cner_ner", config={"model": "runs/tiny/model"})
      doc = nlp("张伟在北京大学工作。")
      [(ent.text, ent.label_, ent._.cner_score) for ent in doc.ents]

sets ``doc.ents`` (replacing any already set) from `cner.inference.tagger.Tagger`'s
entities, placed with ``alignment_mode`` (default ``"expand"``: the tokens the entity
touches). Per ``Doc``, ``doc.user_data["cner_unaligned"]`` counts the entities whose
offsets were not token boundaries (placed with moved boundaries, or left out) and
``doc.user_data["cner_dropped"]`` those left out (no token, or overlapping an entity placed
before it); the component's ``unaligned``/``dropped`` count them over all documents, and
the first such ``Doc`` gives a `UserWarning`. ``nlp.pipe`` annotates a batch at a time
through `Tagger.pipe`. Config: ``model`` (the model directory), ``alignment_mode``,
``batch_size`` (windows per model call), ``device``, ``precision``.

spaCy finds the factory through the ``spacy_factories`` entry point once cner is installed;
importing this module registers it too.
"""
import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Optional

try:
    import spacy
    from spacy.language import Language
    from spacy.tokens import Doc, Span
    from spacy.util import minibatch
except ImportError as exc:  # pragma: no cover - the extra is missing
    from cner.data.spacy_docbin import SPACY_HINT

    raise ImportError(f"cner.integrations.spacy needs spaCy: {SPACY_HINT}") from exc

from cner.data.spacy_docbin import _check_mode, place_entities
from cner.errors import ConfigError

logger = logging.getLogger(__name__)

FACTORY = "cner_ner"
SCORE = "cner_score"  # Span extension: the score cner gave the entity

if not Span.has_extension(SCORE):
    Span.set_extension(SCORE, default=None)


class CnerNer:
    """The ``cner_ner`` pipeline component: ``doc.ents`` from a cner `Tagger` (see the module
    docstring). Made by the factory from a model directory, or directly from a tagger:
    ``CnerNer(Tagger.load(DIR))``."""

    def __init__(self, tagger, *, name: str = FACTORY, alignment_mode: str = "expand") -> None:
        self.tagger = tagger
        self.name = name
        self.alignment_mode = _check_mode(alignment_mode)
        self.unaligned = 0  # over all documents so far
        self.dropped = 0

    def __call__(self, doc: Doc) -> Doc:
        return self._set(doc, self.tagger(doc.text))

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """The docs of ``stream``, ``batch_size`` at a time through `Tagger.pipe`."""
        for docs in minibatch(stream, size=batch_size):
            found = self.tagger.pipe([doc.text for doc in docs], chunk_size=max(len(docs), 1))
            for doc, entities in zip(docs, found):
                yield self._set(doc, entities)

    def _set(self, doc: Doc, entities: Sequence) -> Doc:
        found = place_entities(doc, entities, alignment_mode=self.alignment_mode)
        doc.ents = found.spans
        for span, score in zip(found.spans, found.scores):
            span._.set(SCORE, score)
        doc.user_data["cner_unaligned"] = found.unaligned
        doc.user_data["cner_dropped"] = found.dropped
        self.unaligned += found.unaligned
        self.dropped += found.dropped
        if found.unaligned or found.dropped:
            logger.info("%s: %d of %d entities did not align to spaCy's tokens, %d left out",
                        self.name, found.unaligned, len(entities), found.dropped)
            warnings.warn(f"{self.name}: entities whose character offsets are not spaCy token "
                          f"boundaries were placed with alignment_mode={self.alignment_mode!r} "
                          "or left out; doc.user_data['cner_unaligned'] and ['cner_dropped'] "
                          "count them per Doc, the component's .unaligned and .dropped in all",
                          UserWarning, stacklevel=2)
        return doc

    def score(self, examples, **kwargs) -> dict:
        """Entity precision, recall and F1 (spaCy's own NER scorer), for ``nlp.evaluate``."""
        from spacy.scorer import get_ner_prf

        return get_ner_prf(examples, **kwargs)


@Language.factory(FACTORY, assigns=["doc.ents"],
                  default_config={"model": None, "alignment_mode": "expand", "batch_size": 64,
                                  "device": "cpu", "precision": "auto"},
                  default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0,
                                         "ents_per_type": None})
def make_cner_ner(nlp: Language, name: str, model: Optional[str], alignment_mode: str,
                  batch_size: int, device: str, precision: str) -> CnerNer:
    """The ``cner_ner`` factory: ``nlp.add_pipe("cner_ner", config={"model": DIR})``."""
    if model is None:
        raise ConfigError(f"{name} needs a cner model directory: "
                          f'nlp.add_pipe("{FACTORY}", config={{"model": "DIR"}})')
    _check_mode(alignment_mode)
    from cner.inference.tagger import Tagger

    tagger = Tagger.load(str(model), device=device, batch_size=batch_size, precision=precision)
    return CnerNer(tagger, name=name, alignment_mode=alignment_mode)


__all__ = ["FACTORY", "CnerNer", "make_cner_ner"]
