"""Why a model is right or wrong: what `cner evaluate` and `cner train` show beyond an F1.

* `errors` - every gold and predicted entity classed (correct, wrong type, wrong boundary,
  wrong boundary and type, missed, spurious), counts per type, the type confusion matrix and
  the error examples with their context;
* `probe` - the memorisation probe: the test set with the mentions of chosen types replaced
  by synthetic ones of the same type (offsets shifted), F1 per type before and after;
* `calibration` - how well `Entity.score` predicts correctness: expected calibration error
  over score bins, precision and recall at score thresholds;
* `evaluation` - one pass of a model over a labelled corpus that all of the above share;
* `plots` - ``curves.png`` from a run's ``metrics.jsonl`` and the report's pictures
  (matplotlib, Agg backend: the optional extra ``plots``);
* `report` - a self-contained ``report.html`` (pictures inline, no network access needed).

Imports run one way: `cner.cli` uses this package; it uses `cner.tasks`, `cner.inference`,
`cner.metrics`, `cner.schemes` and `cner.data`, never the other way round.
"""
from __future__ import annotations

PLOTS_HINT = 'pip install "cner[plots]"'
