"""The README's Spark snippet (section "Scaling out") runs on a local pandas frame."""
from __future__ import annotations

import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_spark_snippet_runs_on_a_pandas_frame(tiny_model):
    import pandas as pd

    text = README.read_text("utf-8")
    code = re.search(r"<!-- spark-snippet -->\n```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README spark snippet", "exec"), namespace)
    namespace["MODEL_DIR"] = str(tiny_model)
    out = namespace["entities"](pd.Series(["北京欢迎你", "", "上海市"]))
    assert len(out) == 3
    assert all(isinstance(json.loads(v), list) for v in out)
    assert namespace["entities"](pd.Series(["北京"])).size == 1  # loaded once, used again
