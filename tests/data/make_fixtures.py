"""Regenerate the fixtures of tests/test_corpora_as_published.py from the project's own
synthetic sample (corpora/sample/train.conll, made by cner.data.sample):

* ``weibo_like.conll``: the layout of Weibo NER (Peng & Dredze 2015) as published: each
  character followed by its position in its word (``科0``, ``技1``; ``p10`` in a long word),
  a tab, a BIO tag with a dotted label (``B-PER.NAM``); one invalid transition (``O`` ->
  ``I-LOC.NAM``) as the published files have such.
* ``resume_like.bmes``: the layout of Resume NER (Zhang & Yang 2018): ``char<SPACE>tag``,
  BMES tags, and two invalid transitions (a ``B-`` chunk closed by ``O``, an ``M-`` after
  ``O``), as the published train file has two.

Nothing here is taken from those corpora. Run ``python tests/data/make_fixtures.py``.
"""
from __future__ import annotations

import re
from pathlib import Path

from cner.data.formats import read_corpus
from cner.schemes import spans_to_tags

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[1] / "corpora" / "sample" / "train.conll"
SENTENCES = 60  # about 1,900 characters: more than the 1,000 tokens detection looks at
URL = "详情见http://t.cn/RabcXYZ9"  # one word of 21 characters: positions up to 20


def words(text: str, bounds: set[int]) -> list[str]:
    """A simple deterministic segmentation: runs of ASCII letters, digits and URL marks are
    one word, other characters pair up; no word crosses an entity boundary."""
    out, i = [], 0
    while i < len(text):
        run = re.match(r"[A-Za-z0-9:/.]+", text[i:])
        j = i + (len(run.group()) if run else 2)
        j = min([j, len(text)] + [b for b in bounds if i < b < j])
        out.append(text[i:j])
        i = j
    return out


def weibo_like(examples) -> str:
    lines = []
    for k, ex in enumerate(examples):
        tags = spans_to_tags(ex.spans, len(ex.text), scheme="bio")
        tags = [t if t == "O" else f"{t}.NAM" for t in tags]
        if k == 3:  # the repaired transition: the B- of the first entity becomes I-
            first = ex.spans[0].start
            tags[first] = "I" + tags[first][1:]
        bounds = {b for s in ex.spans for b in (s.start, s.end)}
        chars = [f"{c}{p}" for word in words(ex.text, bounds) for p, c in enumerate(word)]
        lines += [f"{c}\t{t}" for c, t in zip(chars, tags)] + [""]
    return "\n".join(lines) + "\n"


def resume_like(examples) -> str:
    lines = []
    for k, ex in enumerate(examples):
        tags = spans_to_tags(ex.spans, len(ex.text), scheme="bmes")
        tags = [t.replace("-PER", "-NAME") for t in tags]  # Resume's label for a person
        long = [s for s in ex.spans if s.end - s.start >= 3]
        if k == 5 and long:  # B- M- E- -> B- M- O: the chunk is never closed
            tags[long[0].end - 1] = "O"
        if k == 9 and long:  # B- M- E- -> O M- E-: a middle without a beginning
            tags[long[0].start] = "O"
        lines += [f"{c} {t}" for c, t in zip(ex.text, tags)] + [""]
    return "\n".join(lines) + "\n"


def main() -> None:
    examples = read_corpus(SAMPLE).examples[:SENTENCES]
    with_url = [*examples[:10], type(examples[0])(URL), *examples[10:]]
    (HERE / "weibo_like.conll").write_text(weibo_like(with_url), encoding="utf-8")
    (HERE / "resume_like.bmes").write_text(resume_like(examples), encoding="utf-8")


if __name__ == "__main__":
    main()
