"""The memorisation probe: does the model find entities it has never seen?

Every gold mention of the chosen types in the test set is replaced by a synthetic one of the
same type, the text rebuilt and every offset after it shifted (an entity that contains the
mention grows or shrinks with it), then the model is scored again. A model that learnt the
test names by heart (from a leak or a pre-training corpus) loses much of its F1 on them; one
that reads the context keeps it.

Replacements, for each chosen type:

* a list the user gives (``TYPE<TAB>MENTION`` lines), when it names the type;
* person names (``PER``, ``PERSON``, ``NR``, ``PER.NAM``...): a common surname and one or two
  given-name characters, never a name that occurs in the test or training set;
* any other type: the training set's other mentions of that type (not the one replaced).

Within a sentence the same mention always becomes the same replacement. A mention that
overlaps another entity only in part, or holds one inside it, is left as it is (counted as
``skipped``): no offsets could stay consistent. All draws come from ``random.Random(seed)``.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cner.data.example import Example
from cner.errors import InputError
from cner.fileio import iter_lines
from cner.metrics import entity_scores
from cner.schemes import Span

PROBES = ("names",)
# The 100 commonest Chinese surnames and common given-name characters.
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜"
            "叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶"
            "黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN_NAME_CHARS = ("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建峰晨宇浩然欣怡佳琪子"
                    "轩梓涵雨诗思文博志国海波云飞玲婷雪琳颖慧倩晶亮斌凯鑫蕾阳春梅丹")
PERSON_TYPES = frozenset({"PER", "PERSON", "PERS", "NR", "NAME", "PEOPLE"})
NOMINAL_SUFFIXES = frozenset({"NOM"})  # Weibo's PER.NOM: 男友, 妈妈 - not names
ONE_CHAR_GIVEN_NAME = 0.3  # the share of synthetic names with a one-character given name


def is_person_name_type(label: str) -> bool:
    """``PER``, ``PERSON``, ``NR``, ``name``, ``PER.NAM``: yes; ``PER.NOM``, ``LOC``: no."""
    base, _, suffix = label.upper().partition(".")
    return base in PERSON_TYPES and suffix not in NOMINAL_SUFFIXES


@dataclass(frozen=True)
class Replacement:
    """One replaced mention: sentence ``index``, the gold span and text before, and after."""

    index: int
    before: Span
    before_text: str
    after: Span
    after_text: str


@dataclass
class ProbedCorpus:
    examples: list[Example]
    replacements: list[Replacement]
    skipped: int  # mentions of the chosen types left as they were (nested / overlapping)
    sources: dict[str, str] = field(default_factory=dict)  # type -> where replacements came from


def replaceable(span: Span, spans: Sequence[Span]) -> bool:
    """No other span overlaps ``span`` in part, shares its boundaries or lies inside it
    (one that contains it is fine: it grows or shrinks with the replacement)."""
    for other in spans:
        if other is span or other.end <= span.start or other.start >= span.end:
            continue
        contains = other.start <= span.start and other.end >= span.end
        if not contains or (other.start, other.end) == (span.start, span.end):
            return False
    return True


def replace_mentions(example: Example, new_text_for: Callable[[Span, str], str | None]
                     ) -> tuple[Example, list[tuple[Span, Span]], int]:
    """``example`` with each replaceable span for which ``new_text_for(span, mention)``
    gives a text replaced by it; returns the new example, the ``(before, after)`` span pairs
    and how many spans were asked about but could not be replaced."""
    spans = list(example.spans)
    chosen, skipped = [], 0
    for span in spans:
        mention = example.text[span.start:span.end]
        new = new_text_for(span, mention)
        if new is None:
            continue
        if not new or not replaceable(span, spans):
            skipped += 1
            continue
        chosen.append((span, new))
    if not chosen:
        return example, [], skipped
    chosen.sort(key=lambda pair: pair[0].start)
    shifts = [(span.end, len(new) - (span.end - span.start)) for span, new in chosen]

    def moved(position: int) -> int:
        return position + sum(delta for end, delta in shifts if end <= position)

    pieces, cursor = [], 0
    for span, new in chosen:
        pieces += [example.text[cursor:span.start], new]
        cursor = span.end
    pieces.append(example.text[cursor:])
    replaced = {span: new for span, new in chosen}
    new_spans, pairs = [], []
    for span in spans:
        start = moved(span.start)
        if span in replaced:
            after = Span(start, start + len(replaced[span]), span.label)
            pairs.append((span, after))
        else:
            after = Span(start, moved(span.end), span.label)
        new_spans.append(after)
    return (replace(example, text="".join(pieces), spans=tuple(sorted(new_spans))), pairs,
            skipped)


class MentionSource:
    """Draws the replacement mentions of each chosen type (see the module docstring)."""

    def __init__(self, types: Sequence[str], examples: Sequence[Example], *, seed: int = 0,
                 train: Sequence[Example] = (), mentions: Mapping[str, Sequence[str]] | None = None
                 ) -> None:
        self.rng = random.Random(seed)
        self.types = list(types)
        self.user = {label: sorted(set(m for m in values if m))
                     for label, values in (mentions or {}).items()}
        self.seen: dict[str, set[str]] = {}
        for ex in (*examples, *train):
            for span in ex.spans:
                self.seen.setdefault(span.label, set()).add(ex.text[span.start:span.end])
        train_mentions: dict[str, set[str]] = {}
        for ex in train:
            for span in ex.spans:
                train_mentions.setdefault(span.label, set()).add(ex.text[span.start:span.end])
        self.train = {label: sorted(values) for label, values in train_mentions.items()}
        for label in self.types:
            if not (self.user.get(label) or is_person_name_type(label) or self.train.get(label)):
                raise InputError(f"the probe has nothing to replace {label} mentions with: it "
                                 "makes up person names only",
                                 hint=f"give a training file with {label} mentions (--train) "
                                      "or a list of mentions")

    def name(self, label: str) -> str:
        avoid = self.seen.get(label, set())
        for _ in range(100):
            given = 1 if self.rng.random() < ONE_CHAR_GIVEN_NAME else 2
            name = self.rng.choice(SURNAMES) + "".join(self.rng.choice(GIVEN_NAME_CHARS)
                                                       for _ in range(given))
            if name not in avoid:
                return name
        return name  # pragma: no cover - 100 seen names in a row

    def kind(self, label: str) -> str:
        """Where ``label``'s replacements come from, in words."""
        if self.user.get(label):
            return "the given list"
        return "made-up names" if is_person_name_type(label) else "training mentions"

    def draw(self, label: str, mention: str) -> str:
        pool = self.user.get(label)
        if not pool and is_person_name_type(label):
            return self.name(label)
        pool = pool or self.train[label]
        others = [m for m in pool if m != mention]
        return self.rng.choice(others or pool)


def probe_corpus(examples: Sequence[Example], types: Sequence[str], *, seed: int = 0,
                 train: Sequence[Example] = (),
                 mentions: Mapping[str, Sequence[str]] | None = None) -> ProbedCorpus:
    """``examples`` with every replaceable gold mention of ``types`` replaced (see the module
    docstring); the text, the spans and their order stay consistent."""
    source = MentionSource(types, examples, seed=seed, train=train, mentions=mentions)
    chosen = set(types)
    probed, replacements, skipped = [], [], 0
    for index, example in enumerate(examples):
        memo: dict[tuple[str, str], str] = {}

        def new_text_for(span: Span, mention: str) -> str | None:
            if span.label not in chosen:
                return None
            key = (span.label, mention)
            if key not in memo:
                memo[key] = source.draw(span.label, mention)
            return memo[key]

        new, pairs, missed = replace_mentions(example, new_text_for)
        probed.append(new)
        skipped += missed
        replacements += [Replacement(index, before, example.text[before.start:before.end],
                                     after, new.text[after.start:after.end])
                         for before, after in pairs]
    return ProbedCorpus(probed, replacements, skipped,
                        {label: source.kind(label) for label in types})


def default_types(labels: Sequence[str]) -> list[str]:
    """The person-name types among ``labels`` (what ``--probe names`` replaces by default)."""
    return [label for label in labels if is_person_name_type(label)]


def read_mention_list(path: str | Path) -> dict[str, list[str]]:
    """``TYPE<TAB>MENTION`` lines (blank lines and ``#`` comments skipped) as
    ``{type: [mention, ...]}``."""
    found: dict[str, list[str]] = {}
    for number, line in iter_lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        label, tab, mention = line.partition("\t")
        if not tab or not label.strip() or not mention.strip():
            raise InputError("expected TYPE<TAB>MENTION", path=path, line=number)
        found.setdefault(label.strip(), []).append(mention.strip())
    return found


def _found(predicted: Sequence[Sequence], index: int, span: Span) -> bool:
    return any((e.start, e.end, e.label) == (span.start, span.end, span.label)
               for e in predicted[index])


def _spans(predicted: Sequence[Sequence]) -> list[list[Span]]:
    return [[Span(e.start, e.end, e.label) for e in ents] for ents in predicted]


def probe_report(examples: Sequence[Example], probed: ProbedCorpus, before: Sequence[Sequence],
                 after: Sequence[Sequence], *, types: Sequence[str], probe: str = "names",
                 seed: int = 0) -> dict:
    """F1 per type (and micro) on the original and the probed corpus, from the model's
    entities on each (``before``, ``after``), and how many replaced mentions it found exactly
    before and after."""
    scores_before = entity_scores([ex.spans for ex in examples], _spans(before),
                                  [len(ex.text) for ex in examples])
    scores_after = entity_scores([ex.spans for ex in probed.examples], _spans(after),
                                 [len(ex.text) for ex in probed.examples])
    per_type = {}
    for label in sorted(set(scores_before["per_type"]) | set(scores_after["per_type"])):
        b = scores_before["per_type"].get(label, {"f1": 0.0, "support": 0})
        a = scores_after["per_type"].get(label, {"f1": 0.0, "support": 0})
        per_type[label] = {"support": b["support"], "f1_before": b["f1"], "f1_after": a["f1"],
                           "change": a["f1"] - b["f1"], "probed": label in types}
    return {"probe": probe, "types": list(types), "seed": seed, "sources": probed.sources,
            "replaced": len(probed.replacements), "skipped": probed.skipped,
            "found_before": sum(_found(before, r.index, r.before) for r in probed.replacements),
            "found_after": sum(_found(after, r.index, r.after) for r in probed.replacements),
            "per_type": per_type,
            "overall": {"f1_before": scores_before["f1"], "f1_after": scores_after["f1"],
                        "change": scores_after["f1"] - scores_before["f1"]},
            "examples": [{"sentence": r.index, "before": r.before_text, "after": r.after_text}
                         for r in probed.replacements[:20]]}


def format_probe(report: dict) -> str:
    """The probe's table for `cner evaluate`."""
    sources = "; ".join(f"{label}: {kind}" for label, kind in report["sources"].items())
    lines = [f"memorisation probe ({report['probe']}, seed {report['seed']}): "
             f"{report['replaced']} mentions replaced ({sources})"
             + (f", {report['skipped']} nested ones left as they were" if report["skipped"]
                else "")]
    header = f"{'type':<16}{'support':>10}{'F1 before':>12}{'F1 after':>12}{'change':>10}"
    lines += [header, "-" * len(header)]
    rows = [(label + (" *" if row["probed"] else ""), row)
            for label, row in report["per_type"].items()]
    for label, row in rows:
        lines.append(f"{label:<16}{row['support']:>10}{row['f1_before']:>12.4f}"
                     f"{row['f1_after']:>12.4f}{row['change']:>+10.4f}")
    overall = report["overall"]
    lines += ["-" * len(header),
              f"{'micro avg':<16}{'':>10}{overall['f1_before']:>12.4f}{overall['f1_after']:>12.4f}"
              f"{overall['change']:>+10.4f}",
              f"(* replaced) the replaced mentions found exactly: {report['found_before']} of "
              f"{report['replaced']} before, {report['found_after']} after"]
    return "\n".join(lines)


__all__ = ["PROBES", "ProbedCorpus", "Replacement", "default_types", "format_probe",
           "is_person_name_type", "probe_corpus", "probe_report", "read_mention_list",
           "replace_mentions"]
