"""spaCy interop: cner corpora as ``DocBin`` files, and cner's tagger as a spaCy component.

cner works in character offsets; spaCy in tokens. Both directions go through
``Doc.char_span(start, end, alignment_mode=...)``. With ``spacy.blank("zh")`` (its default
``char`` segmenter: one token per non-space character) every cner entity aligns unless it
starts or ends on whitespace; with a word tokenizer (``spacy.blank("xx")``, or ``zh`` with
jieba/pkuseg) an entity may cut a token. Such entities are never silently moved or lost:
they are counted.

* `examples_to_docbin` (``cner corpora convert FILE --to spacy -o out.spacy``): one ``Doc``
  per example, tokenized by ``spacy.blank(lang)``, ``doc.ents`` from the example's spans
  (``alignment_mode="strict"`` by default: an entity that does not align is left out and
  counted); the example's id, if any, in ``doc.user_data["id"]``.
* the factory ``cner_ner``::

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
from dataclasses import dataclass, field
from typing import Any, Optional

try:
    import spacy
    from spacy.language import Language
    from spacy.tokens import Doc, DocBin, Span
    from spacy.util import minibatch
except ImportError as exc:  # pragma: no cover - the extra is missing
    from cner.integrations import SPACY_HINT

    raise ImportError(f"cner.integrations.spacy needs spaCy: {SPACY_HINT}") from exc

from cner.errors import ConfigError

logger = logging.getLogger(__name__)

ALIGNMENT_MODES = ("strict", "contract", "expand")
FACTORY = "cner_ner"
SCORE = "cner_score"  # Span extension: the score cner gave the entity

if not Span.has_extension(SCORE):
    Span.set_extension(SCORE, default=None)


def _check_mode(alignment_mode: str) -> str:
    if alignment_mode not in ALIGNMENT_MODES:
        raise ConfigError(f"alignment_mode must be one of {', '.join(ALIGNMENT_MODES)}, "
                          f"got {alignment_mode!r}")
    return alignment_mode


@dataclass
class Placement:
    """What `place_entities` made of a document's entities: the ``spans`` (with cner's
    ``scores``), ``unaligned`` (entities whose offsets are not token boundaries), of those
    ``adjusted`` (placed with the boundaries ``alignment_mode`` gave), and ``dropped`` (left
    out: no span, an empty one, or one overlapping an entity placed before it, as two entities
    expanded over the same token do)."""

    spans: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    unaligned: int = 0
    adjusted: int = 0
    dropped: int = 0


def place_entities(doc: Doc, entities: Iterable, *, alignment_mode: str = "expand"
                   ) -> Placement:
    """Character-offset entities (anything with ``start``, ``end``, ``label``, optionally
    ``score``) as non-overlapping spans of ``doc``, sorted (see `Placement`)."""
    _check_mode(alignment_mode)
    found = Placement()
    placed: list[tuple[Span, Any]] = []
    taken: set[int] = set()
    for entity in entities:
        span = doc.char_span(entity.start, entity.end, label=entity.label)
        moved = span is None
        if moved:
            found.unaligned += 1
            span = doc.char_span(entity.start, entity.end, label=entity.label,
                                 alignment_mode=alignment_mode)
        if span is None or len(span) == 0 or taken.intersection(range(span.start, span.end)):
            found.dropped += 1
            continue
        found.adjusted += moved
        taken.update(range(span.start, span.end))
        placed.append((span, getattr(entity, "score", None)))
    placed.sort(key=lambda item: item[0].start)
    found.spans = [span for span, _ in placed]
    found.scores = [score for _, score in placed]
    return found


@dataclass
class DocBinResult:
    """What `examples_to_docbin` made: the ``docbin``, its ``docs`` and ``entities``, and the
    entities left out (``dropped``: not aligned to spaCy's tokens in ``alignment_mode``, or
    overlapping another) or kept with other boundaries (``adjusted``, with ``contract`` or
    ``expand`` only)."""

    docbin: DocBin
    docs: int = 0
    entities: int = 0
    dropped: int = 0
    adjusted: int = 0


def examples_to_docbin(examples: Iterable, *, lang: str = "zh",
                       alignment_mode: str = "strict") -> DocBinResult:
    """A ``DocBin`` with one ``Doc`` per example (`cner.data.example.Example`), tokenized by
    ``spacy.blank(lang)`` (``zh``: one token per character), entities in ``doc.ents``.

    Overlapping (nested) spans cannot all be ``doc.ents``: flatten them first
    (`cner.schemes.flatten_spans`); any still overlapping are counted as dropped."""
    _check_mode(alignment_mode)
    nlp = spacy.blank(lang)
    result = DocBinResult(DocBin(store_user_data=True))
    for example in examples:
        doc = nlp.make_doc(example.text)
        found = place_entities(doc, example.spans, alignment_mode=alignment_mode)
        doc.ents = found.spans
        if example.id is not None:
            doc.user_data["id"] = example.id
        result.docbin.add(doc)
        result.docs += 1
        result.entities += len(found.spans)
        result.dropped += found.dropped
        result.adjusted += found.adjusted
    return result


def docbin_docs(data: bytes | str, *, lang: str = "zh") -> list[Doc]:
    """The ``Doc``s of a ``DocBin`` (its bytes, or the path of a ``.spacy`` file)."""
    nlp = spacy.blank(lang)
    docbin = DocBin().from_bytes(data) if isinstance(data, bytes) else DocBin().from_disk(data)
    return list(docbin.get_docs(nlp.vocab))


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


__all__ = ["ALIGNMENT_MODES", "FACTORY", "CnerNer", "DocBinResult", "Placement", "docbin_docs",
           "examples_to_docbin", "make_cner_ner", "place_entities"]
