"""Why a model is right or wrong (issue 18): error classes, the memorisation probe, score
calibration, the training curves, the report, and the CLI options that show them."""
from __future__ import annotations

import json
import random
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cner.data.example import Example
from cner.data.formats import read_corpus
from cner.insight import calibration as cal
from cner.insight.errors import (CORRECT, GOLD_KINDS, MISSED, PREDICTED_KINDS, SPURIOUS,
                                 WRONG_BOUNDARY, WRONG_BOUNDARY_AND_TYPE, WRONG_TYPE,
                                 analyse_errors, classify_entities)
from cner.insight.probe import (GIVEN_NAME_CHARS, SURNAMES, is_person_name_type, probe_corpus,
                                read_mention_list, replace_mentions)
from cner.metrics import entity_scores
from cner.schemes import Span, spans_to_tags, tags_to_spans
from reliability_catalogue import SAMPLE, run_cner

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--set", "model.hidden_size=32", "--set", "model.num_layers=1", "--set",
        "model.num_heads=2", "--set", "model.intermediate_size=64", "--set",
        "training.max_steps=4", "--set", "training.eval_every=2", "--set", "training.log_every=1",
        "--set", "training.threads=1", "--set", "training.precision=fp32", "-q"]


def at(text: str, mention: str, label: str, nth: int = 0) -> Span:
    start = -1
    for _ in range(nth + 1):
        start = text.index(mention, start + 1)
    return Span(start, start + len(mention), label)


# -- error classes -----------------------------------------------------------------------------

TEXT = "张伟在北京大学工作，李娜去了上海和广州。"
GOLD = [at(TEXT, "张伟", "PER"), at(TEXT, "北京大学", "ORG"), at(TEXT, "李娜", "PER"),
        at(TEXT, "上海", "LOC"), at(TEXT, "广州", "LOC")]
PREDICTED = [at(TEXT, "张伟", "PER"),          # correct
             at(TEXT, "北京大学", "LOC"),       # wrong type
             at(TEXT, "李", "PER", 0),          # wrong boundary (too short)
             at(TEXT, "了上海", "ORG"),         # wrong boundary and type (too long)
             at(TEXT, "工作", "ORG")]           # spurious; 广州 is missed


def test_every_entity_gets_its_class_and_the_counts_sum():
    gold, predicted = classify_entities(GOLD, PREDICTED)
    assert [o.kind for o in gold] == [CORRECT, WRONG_TYPE, WRONG_BOUNDARY,
                                      WRONG_BOUNDARY_AND_TYPE, MISSED]
    assert [o.kind for o in predicted] == [CORRECT, WRONG_TYPE, SPURIOUS, WRONG_BOUNDARY,
                                           WRONG_BOUNDARY_AND_TYPE]  # in text order
    assert [o.boundary for o in gold] == [None, None, "shorter", "longer", None]
    analysis = analyse_errors([Example(TEXT, tuple(GOLD))], [PREDICTED])
    g, p = analysis.gold_counts(), analysis.predicted_counts()
    assert g["overall"] == {CORRECT: 1, WRONG_TYPE: 1, WRONG_BOUNDARY: 1,
                            WRONG_BOUNDARY_AND_TYPE: 1, MISSED: 1, "total": 5}
    assert p["overall"] == {CORRECT: 1, WRONG_TYPE: 1, WRONG_BOUNDARY: 1,
                            WRONG_BOUNDARY_AND_TYPE: 1, SPURIOUS: 1, "total": 5}
    assert g["per_type"]["PER"] == {CORRECT: 1, WRONG_TYPE: 0, WRONG_BOUNDARY: 1,
                                    WRONG_BOUNDARY_AND_TYPE: 0, MISSED: 0, "total": 2}
    assert g["per_type"]["LOC"][MISSED] == 1 and p["per_type"]["ORG"][SPURIOUS] == 1
    for counts, kinds in ((g, GOLD_KINDS), (p, PREDICTED_KINDS)):
        for row in (*counts["per_type"].values(), counts["overall"]):
            assert sum(row[k] for k in kinds) == row["total"]
    assert analysis.boundary_counts() == {"longer": 1, "shorter": 1, "shifted": 0}
    # one event per mistake: 4 gold entities not correct, and the spurious prediction
    assert analysis.n_events() == 5
    assert sorted(r["kind"] for r in analysis.event_rows()) == sorted(
        [WRONG_TYPE, WRONG_BOUNDARY, WRONG_BOUNDARY_AND_TYPE, MISSED, SPURIOUS])
    labels, matrix = analysis.confusion()
    assert labels == ["LOC", "ORG", "PER", "(none)"]
    assert matrix == [[0, 1, 0, 1],   # 上海 -> ORG (了上海), 广州 missed
                      [1, 0, 0, 0],   # 北京大学 -> LOC
                      [0, 0, 2, 0],   # 张伟, 李娜 -> PER
                      [0, 1, 0, 0]]   # 工作 spurious ORG
    assert [sum(row) for row in matrix[:-1]] == [2, 1, 2]
    table = analysis.format()
    assert "wrong boundary" in table and re.search(r"^all\s+5\s", table, re.M)


def test_one_prediction_over_two_gold_entities():
    text = "北京大学生"
    gold = [Span(0, 2, "LOC"), Span(2, 4, "ORG")]
    predicted = [Span(0, 4, "ORG")]
    g, p = classify_entities(gold, predicted)
    assert [o.kind for o in g] == [WRONG_BOUNDARY_AND_TYPE, WRONG_BOUNDARY]
    assert [o.kind for o in p] == [WRONG_BOUNDARY] and p[0].other == Span(2, 4, "ORG")
    analysis = analyse_errors([Example(text, tuple(gold))], [predicted])
    assert analysis.n_events() == 2  # the prediction is the counterpart of both
    rows = list(analysis.event_rows(context=1))
    assert rows[0]["context"] == "【北京大学】生" and rows[0]["predicted"]["text"] == "北京大学"


def test_correct_counts_are_strict_precision_and_recall():
    rng = random.Random(7)
    examples, predicted = [], []
    for _ in range(200):
        n = rng.randint(0, 30)

        def spans():
            found, cursor = [], 0
            while cursor < n - 1:
                start = cursor + rng.randint(0, 4)
                end = start + rng.randint(1, 4)
                if end > n:
                    break
                found.append(Span(start, end, rng.choice("AB")))
                cursor = end
            return found

        examples.append(Example("字" * n, tuple(spans())))
        predicted.append(spans())
    scores = entity_scores([e.spans for e in examples], predicted, [len(e.text) for e in examples])
    analysis = analyse_errors(examples, predicted)
    g, p = analysis.gold_counts()["overall"], analysis.predicted_counts()["overall"]
    assert g[CORRECT] == p[CORRECT]
    assert g[CORRECT] / p["total"] == pytest.approx(scores["precision"])
    assert g[CORRECT] / g["total"] == pytest.approx(scores["recall"])


# -- the memorisation probe --------------------------------------------------------------------

def test_the_probe_replaces_only_the_chosen_types_and_keeps_offsets():
    test = read_corpus(SAMPLE / "test.conll").examples
    train = read_corpus(SAMPLE / "train.conll").examples
    probed = probe_corpus(test, ["PER"], seed=3, train=train)
    assert probed.replacements and probed.skipped == 0
    assert len(probed.replacements) == sum(s.label == "PER" for ex in test for s in ex.spans)
    seen = {ex.text[s.start:s.end] for ex in (*test, *train) for s in ex.spans}
    for r in probed.replacements:
        new = probed.examples[r.index]
        assert new.text[r.after.start:r.after.end] == r.after_text
        assert r.after.label == "PER" and r.after in new.spans
        assert r.after_text not in seen and r.after_text[0] in SURNAMES
        assert 2 <= len(r.after_text) <= 3 and set(r.after_text[1:]) <= set(GIVEN_NAME_CHARS)
    for before, after in zip(test, probed.examples):
        assert len(before.spans) == len(after.spans)
        keep = [(s.label, before.text[s.start:s.end]) for s in before.spans if s.label != "PER"]
        assert keep == [(s.label, after.text[s.start:s.end]) for s in after.spans
                        if s.label != "PER"]
        # the tags written from the new spans read back as the same spans
        tags = spans_to_tags(list(after.spans), len(after.text), scheme="bio")
        assert tags_to_spans(tags, scheme="bio") == sorted(after.spans)
    again = probe_corpus(test, ["PER"], seed=3, train=train)
    assert [e.text for e in again.examples] == [e.text for e in probed.examples]
    other = probe_corpus(test, ["PER"], seed=4, train=train)
    assert [e.text for e in other.examples] != [e.text for e in probed.examples]


def test_the_probe_draws_other_types_from_training_mentions_or_a_list(tmp_path):
    test = read_corpus(SAMPLE / "test.conll").examples
    train = read_corpus(SAMPLE / "train.conll").examples
    pool = {ex.text[s.start:s.end] for ex in train for s in ex.spans if s.label == "LOC"}
    probed = probe_corpus(test, ["LOC"], seed=0, train=train)
    assert probed.replacements
    for r in probed.replacements:
        assert r.after_text in pool and r.after_text != r.before_text
        assert probed.examples[r.index].text[r.after.start:r.after.end] == r.after_text
    listing = tmp_path / "mentions.tsv"
    listing.write_text("# type and mention\nLOC\t火星基地\n\nLOC\t月球背面\n", "utf-8")
    mentions = read_mention_list(listing)
    assert mentions == {"LOC": ["火星基地", "月球背面"]}
    listed = probe_corpus(test, ["LOC"], seed=0, mentions=mentions)
    assert {r.after_text for r in listed.replacements} <= {"火星基地", "月球背面"}
    from cner.errors import InputError

    with pytest.raises(InputError, match="nothing to replace ORG"):
        probe_corpus(test, ["ORG"])
    listing.write_text("LOC 火星\n", "utf-8")
    with pytest.raises(InputError, match=r"mentions\.tsv:1: expected TYPE<TAB>MENTION"):
        read_mention_list(listing)


def test_replacing_shifts_containing_and_following_entities():
    text = "我说北京张三公司和李四好"
    spans = (at(text, "北京张三公司", "ORG"), at(text, "张三", "PER"), at(text, "李四", "PER"),
             at(text, "四好", "X"))   # 李四 overlaps 四好 in part: left as it is
    example = Example(text, tuple(sorted(spans)))
    new, pairs, skipped = replace_mentions(
        example, lambda span, mention: "欧阳娜娜" if span.label == "PER" else None)
    assert skipped == 1 and len(pairs) == 1
    assert new.text == "我说北京欧阳娜娜公司和李四好"
    assert [(s.label, new.text[s.start:s.end]) for s in new.spans] == [
        ("ORG", "北京欧阳娜娜公司"), ("PER", "欧阳娜娜"), ("PER", "李四"), ("X", "四好")]


def test_person_name_types():
    assert all(map(is_person_name_type, ["PER", "PERSON", "NR", "name", "PER.NAM"]))
    assert not any(map(is_person_name_type, ["PER.NOM", "LOC", "ORG", "GPE.NAM"]))


# -- calibration -------------------------------------------------------------------------------

def test_calibration_figures_of_a_constructed_case():
    # 4 entities at 0.95 with 3 right (gap 0.2), 4 at 0.25 with 1 right (gap 0); 6 gold
    scored = [(0.95, True)] * 3 + [(0.95, False)] + [(0.25, True)] + [(0.25, False)] * 3
    report = cal.calibration(scored, 6, bins=10, thresholds=(0.0, 0.5))
    assert report["ece"] == pytest.approx(0.5 * 0.2 + 0.5 * 0.0)
    assert report["max_gap"] == pytest.approx(0.2)
    assert report["brier"] == pytest.approx((3 * 0.05 ** 2 + 0.95 ** 2 + 0.75 ** 2
                                             + 3 * 0.25 ** 2) / 8)
    full = {b["low"]: b for b in report["bins"] if b["count"]}
    assert set(full) == {0.2, 0.9} and full[0.9]["accuracy"] == 0.75
    assert full[0.2]["mean_score"] == pytest.approx(0.25)
    all_kept, high = report["thresholds"]
    assert (all_kept["kept"], all_kept["precision"], all_kept["recall"]) == (8, 0.5, 4 / 6)
    assert (high["kept"], high["precision"], high["recall"]) == (4, 0.75, 0.5)
    assert high["f1"] == pytest.approx(0.6)
    assert report["best"]["threshold"] == 0.95 and report["best"]["f1"] == pytest.approx(0.6)
    assert len(report["curve"]) == 51
    text = cal.format_calibration(report)
    assert "expected calibration error 0.1000" in text and "--min-score 0.95" in text


def test_calibration_edges():
    perfect = cal.calibration([(1.0, True), (0.0, False)], 1, bins=4)
    assert perfect["ece"] == 0.0 and perfect["bins"][-1]["count"] == 1  # 1.0: the last bin
    empty = cal.calibration([], 3)
    assert empty["ece"] == 0.0 and empty["best"]["f1"] == 0.0
    with pytest.raises(ValueError):
        cal.calibration([(1.5, True)], 1)
    gold = Example("张伟在北京", (Span(0, 2, "PER"), Span(3, 5, "LOC")))

    class E:
        def __init__(self, start, end, label, score):
            self.start, self.end, self.label, self.score = start, end, label, score

    assert cal.scored_predictions([gold], [[E(0, 2, "PER", 0.9), E(3, 5, "ORG", 0.4)]]) == [
        (0.9, True), (0.4, False)]


# -- pictures, report and the command line -----------------------------------------------------

def check_png(data: bytes) -> None:
    import io

    from matplotlib import image

    assert data[:8] == PNG_MAGIC
    pixels = image.imread(io.BytesIO(data), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50


class PageParser(HTMLParser):
    """Collects the tags, the ``src``/``href`` values and unclosed elements of a page."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()


def test_train_writes_curves_png(tmp_path):
    code, output = run_cner(["train", "--train", str(SAMPLE / "train.conll"), "--dev",
                             str(SAMPLE / "dev.conll"), "-o", "run", *TINY], tmp_path)
    assert code == 0, output
    curves = tmp_path / "run" / "curves.png"
    assert f"curves: {Path('run') / 'curves.png'}" in output
    check_png(curves.read_bytes())
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert any(e["event"] == "eval" and e.get("per_type") for e in events)


def test_train_without_matplotlib_says_so_in_one_line(tmp_path, tiny_model, monkeypatch, capsys):
    from cner.cli.insight import write_run_curves
    from cner.insight import plots

    (tmp_path / "metrics.jsonl").write_bytes((tiny_model.parent / "metrics.jsonl").read_bytes())
    monkeypatch.setattr(plots, "have_matplotlib", lambda: False)
    write_run_curves(tmp_path)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "cner[plots]"' in err
    assert not (tmp_path / "curves.png").exists()
    monkeypatch.undo()
    (tmp_path / "metrics.jsonl").unlink()
    write_run_curves(tmp_path)  # no log: a note, not a failure
    assert "note: no curves.png" in capsys.readouterr().err


def test_evaluate_prints_the_calibration(tmp_path, tiny_model):
    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "dev.conll")],
                            tmp_path)
    assert code == 0, output
    assert "micro avg" in output and "expected calibration error" in output
    assert re.search(r"best F1 [\d.]+ at --min-score [\d.]+", output)


def test_evaluate_errors_and_examples(tmp_path, tiny_model):
    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "dev.conll"),
                             "--errors", "--examples", "errors.jsonl", "--json", "s.json"],
                            tmp_path)
    assert code == 0, output
    assert "gold entities, by what the model made of each" in output and "spurious" in output
    figures = json.loads((tmp_path / "s.json").read_text("utf-8"))
    errors = figures["errors"]
    gold = errors["gold"]["overall"]
    assert gold["total"] == figures["support"]
    assert gold["correct"] / max(errors["predicted"]["overall"]["total"], 1) == pytest.approx(
        figures["precision"])
    rows = [json.loads(line) for line in
            (tmp_path / "errors.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) == errors["events"] > 0
    for row in rows:
        assert row["kind"] != "correct"
        assert row["context"] == f"{row['left']}【{row['middle']}】{row['right']}"
        for side in ("gold", "predicted"):
            if row[side]:
                assert row[side]["text"] in row["middle"]
    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "dev.conll"),
                             "--examples", str(SAMPLE / "dev.conll")], tmp_path)
    assert code == 2 and "error:" in output and len(output.strip().splitlines()) == 1


def test_evaluate_probe(tmp_path, tiny_model):
    test = read_corpus(SAMPLE / "test.conll").examples
    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "test.conll"),
                             "--probe", "names", "--types", "PER", "--seed", "1", "--train",
                             str(SAMPLE / "train.conll"), "--json", "s.json"], tmp_path)
    assert code == 0, output
    assert "memorisation probe (names, seed 1)" in output and "F1 after" in output
    probe = json.loads((tmp_path / "s.json").read_text("utf-8"))["probe"]
    assert probe["types"] == ["PER"] and probe["sources"] == {"PER": "made-up names"}
    assert probe["replaced"] == sum(s.label == "PER" for ex in test for s in ex.spans)
    assert [t for t, row in probe["per_type"].items() if row["probed"]] == ["PER"]
    (tmp_path / "m.tsv").write_text("LOC\t火星基地\n", "utf-8")
    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "test.conll"),
                             "--probe", "names", "--types", "LOC", "--mentions", "m.tsv",
                             "--json", "s.json"], tmp_path)
    assert code == 0, output
    probe = json.loads((tmp_path / "s.json").read_text("utf-8"))["probe"]
    assert probe["sources"] == {"LOC": "the given list"}
    assert {x["after"] for x in probe["examples"]} == {"火星基地"}
    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "test.conll"),
                             "--types", "PER"], tmp_path)
    assert code == 2 and output.strip() == ("error: --types only tune the probe: add --probe "
                                            "names")
    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "test.conll"),
                             "--probe", "names", "--types", "ORG"], tmp_path)
    assert code == 2 and "nothing to replace ORG" in output


def test_evaluate_report_is_one_self_contained_page(tmp_path, tiny_model):
    import base64

    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "test.conll"),
                             "--probe", "names", "--report", "report"], tmp_path)
    assert code == 0, output
    page = (tmp_path / "report" / "report.html").read_text("utf-8")
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert parser.open == []
    assert {"html", "table", "img", "mark"} <= parser.tags
    assert not {"script", "link", "iframe", "object"} & parser.tags
    assert "http://" not in page and "https://" not in page and "url(" not in page
    images = [link for link in parser.links if link.startswith("data:image/png;base64,")]
    assert len(images) == len(parser.links) == 4  # outcomes x2, confusion, reliability
    for link in images:
        check_png(base64.b64decode(link.split(",", 1)[1]))
    for title in ("Scores", "Errors", "Entity scores", "Memorisation probe",
                  "The sentences with the most errors"):
        assert f"<h2>{title}</h2>" in page
    figures = json.loads((tmp_path / "report" / "report.json").read_text("utf-8"))
    assert set(figures) >= {"scores", "errors", "calibration", "probe"}


def test_evaluate_report_without_matplotlib_is_one_line(tmp_path, tiny_model, monkeypatch):
    from cner.insight import plots

    monkeypatch.setattr(plots, "have_matplotlib", lambda: False)
    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "test.conll"),
                             "--report", "report"], tmp_path)
    assert code == 2 and output.strip() == ('error: pictures need matplotlib, which is not '
                                            'installed: pip install "cner[plots]"')
    assert not (tmp_path / "report").exists()


def test_annotate_min_score_drops_the_entities_below_it(tmp_path, tiny_model):
    test = read_corpus(SAMPLE / "test.conll").examples
    (tmp_path / "test.txt").write_text("".join(ex.text + "\n" for ex in test), "utf-8")

    def annotate(*extra):
        code, output = run_cner(["annotate", "test.txt", "-m", str(tiny_model), "-o", "o.jsonl",
                                 "--no-compile", *extra], tmp_path)
        assert code == 0, output
        return [json.loads(line)["entities"] for line in
                (tmp_path / "o.jsonl").read_text("utf-8").splitlines()]

    every = annotate()
    scores = sorted(e["score"] for ents in every for e in ents)
    assert len(scores) >= 4, "the tiny model found too few entities to compare"
    threshold = scores[len(scores) // 2]
    kept = annotate("--min-score", str(threshold))
    assert kept == [[e for e in ents if e["score"] >= threshold] for ents in every]
    assert 0 < sum(map(len, kept)) < len(scores)
    _resume_keeps_the_threshold(tmp_path, tiny_model, threshold)
    code, output = run_cner(["annotate", "test.txt", "-m", str(tiny_model), "--min-score",
                             "1.5"], tmp_path)
    assert code == 2 and "1.5" in output


def _resume_keeps_the_threshold(tmp_path, tiny_model, threshold):
    """The threshold is part of the job: an interrupted job resumes only with the same one,
    and then gives what an uninterrupted run gives."""
    from cner.errors import InputError
    from cner.inference.annotate import annotate_files
    from cner.inference.tagger import Tagger

    class Interrupted(Tagger):
        calls = 0

        def pipe(self, texts, **options):
            Interrupted.calls += 1
            if Interrupted.calls == 2:
                raise KeyboardInterrupt
            return super().pipe(texts, **options)

    loaded = Tagger.load(tiny_model)
    straight, out = tmp_path / "s.jsonl", tmp_path / "r.jsonl"
    annotate_files([tmp_path / "test.txt"], loaded, output=straight, batch_size=1,
                   min_score=threshold, progress=False)
    with pytest.raises(KeyboardInterrupt):
        annotate_files([tmp_path / "test.txt"], Interrupted(loaded.predictor, loaded.meta),
                       output=out, batch_size=1, min_score=threshold, progress=False)
    with pytest.raises(InputError, match="options differ"):
        annotate_files([tmp_path / "test.txt"], loaded, output=out, batch_size=1,
                       min_score=0.0, resume=True, progress=False)
    annotate_files([tmp_path / "test.txt"], loaded, output=out, batch_size=1,
                   min_score=threshold, resume=True, progress=False)
    assert out.read_bytes() == straight.read_bytes()


def test_the_best_threshold_evaluate_names_is_what_annotate_min_score_gives(tmp_path,
                                                                               tiny_model):
    test = read_corpus(SAMPLE / "test.conll").examples
    code, output = run_cner(["evaluate", "-m", str(tiny_model), str(SAMPLE / "test.conll")],
                            tmp_path)
    assert code == 0, output
    best = re.search(r"best F1 ([\d.]+) at --min-score ([\d.]+)", output)
    (tmp_path / "test.txt").write_text("".join(ex.text + "\n" for ex in test), "utf-8")
    code, output = run_cner(["annotate", "test.txt", "-m", str(tiny_model), "-o", "o.jsonl",
                             "--no-compile", "--min-score", best.group(2)], tmp_path)
    assert code == 0, output
    predicted = [[Span(e["start"], e["end"], e["label"]) for e in json.loads(line)["entities"]]
                 for line in (tmp_path / "o.jsonl").read_text("utf-8").splitlines()]
    scores = entity_scores([ex.spans for ex in test], predicted, [len(ex.text) for ex in test])
    assert f"{scores['f1']:.4f}" == best.group(1)
