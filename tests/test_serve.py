"""`cner serve` (issue 16): the real server on a free loopback port, a real HTTP client.

One `cner serve` process serves three models for most tests: ``ner``, a tagger with random
weights (many entities, windows of 22 characters so that texts cross window edges), ``tiny``
(the trained `tiny_model`) and ``senti``, a classifier with random weights. Fake runners, in
an in-process server, make a model fail, load slowly or take its time; a second process
shows the graceful shutdown on SIGTERM. Every request goes to 127.0.0.1, bounded in count.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from click.testing import CliRunner

from cner.cli import main
from cner.inference.writers import entity_dict

KEY = "test-key-4f1c9a"
AUTH = {"Authorization": f"Bearer {KEY}"}
HOSTILE = [
    "😀张伟👨‍👩‍👧在北京\u2028大学工作。",  # astral, a ZWJ family, LINE SEPARATOR
    "𠀀𠀁王小明\u2029去了上海浦东𠀂。",  # CJK extension B (astral), PARAGRAPH SEPARATOR
    # a combining mark, ZWJ and ZWSP, a BOM, CR LF, RIGHT-TO-LEFT OVERRIDE
    "e\u0301李娜\u200d\u200b在\ufeff深圳\r\n华为公司\u202e工作",
    "🇨🇳中国" + "😀北京大学" * 12 + "\x00结束",  # flag, emoji across window edges, NUL
    "", " ", "\t\n",
]
SAMPLE_TEXTS = ["张伟在北京大学工作。", "李娜去了上海。", "中国人民银行在北京召开会议。",
                "华为技术有限公司位于深圳市龙岗区。", "王小明和刘德华在香港见面。"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stderr.read()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError("the server did not get ready")


def server_env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CNER_API_KEY": ""}


def start_process(argv: list[str], port: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=server_env())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, url


def stop_process(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err


# -- models with random weights ---------------------------------------------------------------

def _vocab():
    from cner.encoding.vocab import CharVocab

    return CharVocab.build(HOSTILE + SAMPLE_TEXTS + ["东西南北上下左右"], lowercase=True,
                           halfwidth=True)


def _encoder(vocab):
    from cner.config import ModelConfig
    from cner.models.encoders import scratch_encoder

    cfg = ModelConfig(encoder="scratch", hidden_size=32, num_layers=1, num_heads=2,
                      intermediate_size=64, dropout=0.0)
    return scratch_encoder(cfg, vocab, max_positions=64)


@pytest.fixture(scope="module")
def random_models(tmp_path_factory):
    """``(ner_dir, classifier_dir)``: models with random weights, saved as cner train does."""
    import torch

    from cner.models.metadata import ModelMeta
    from cner.models.modeldir import build_classifier, save_model_dir
    from cner.models.tagger import TokenTagger
    from cner.schemes import label_set

    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("serve-models")
    vocab = _vocab()
    tags = label_set(["LOC", "ORG", "PER"], "bio")
    tagger = TokenTagger(_encoder(vocab), tags, scheme="bio", head="crf", dropout=0.0)
    with torch.no_grad():  # strong random emissions: many entities of every type
        tagger.classifier.weight.mul_(30)
    common = dict(dropout=0.0, lowercase=vocab.lowercase, halfwidth=vocab.halfwidth)
    ner = save_model_dir(tagger, vocab, ModelMeta(task="ner", labels=tags, scheme="bio",
                                                  head="crf", max_length=24, overlap=6,
                                                  **common), tmp / "ner")
    meta = ModelMeta(task="classification", labels=["neg", "pos"], scheme=None, head="single",
                     max_length=32, overlap=0, **common)
    senti = save_model_dir(build_classifier(_encoder(vocab), meta), vocab, meta, tmp / "senti")
    return ner, senti


@pytest.fixture(scope="module")
def server(random_models, tiny_model):
    """A `cner serve` process: models ner, tiny, senti; API key; small limits."""
    ner, senti = random_models
    port = free_port()
    process, url = start_process([
        sys.executable, "-m", "cner", "serve", "-m", f"ner={ner}", "-m", f"tiny={tiny_model}",
        "-m", f"senti={senti}", "--port", str(port), "--api-key", KEY, "--precision", "fp32",
        "--max-wait-ms", "20", "--max-body-bytes", "65536", "--max-texts", "64",
        "--max-text-chars", "2000"], port)
    yield SimpleNamespace(url=url, process=process, ner=ner, senti=senti, tiny=tiny_model)
    code, err = stop_process(process)
    assert code == 0, err


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def expected(server):
    """text -> its entities as ``Tagger.pipe`` gives them in process (same model, fp32)."""
    from cner.inference.tagger import Tagger

    tagger = Tagger.load(server.ner, precision="fp32")

    def entities(texts: list[str]) -> list[list[dict]]:
        return [[entity_dict(e) for e in doc] for doc in tagger.pipe(texts)]
    return entities


def many_texts(n: int) -> list[str]:
    """``n`` different texts, hostile ones among them."""
    base = HOSTILE + SAMPLE_TEXTS
    return [f"{base[i % len(base)]}{'第' + str(i) + '号' if i % 3 else ''}" for i in range(n)]


# -- results ----------------------------------------------------------------------------------

def test_entities_are_those_of_tagger_pipe_with_exact_offsets(client, expected):
    texts = many_texts(40)

    async def send_all():  # 8 concurrent requests of 5 texts: batched together
        async with httpx.AsyncClient(base_url=str(client.base_url), headers=AUTH,
                                     timeout=60) as aclient:
            answers = await asyncio.gather(*(aclient.post("/v1/ner", json={"texts": texts[i:i + 5]})
                                             for i in range(0, len(texts), 5)))
        return [doc for a in answers for doc in a.json()["entities"]]

    got = asyncio.run(send_all())
    assert got == expected(texts)
    assert sum(map(len, got)) > 40 and {e["label"] for doc in got for e in doc} == {
        "LOC", "ORG", "PER"}
    for text, doc in zip(texts, got):
        for e in doc:
            assert text[e["start"]:e["end"]] == e["text"] and 0 < e["end"] - e["start"]
            assert set(e) == {"start", "end", "label", "text", "score"}
    astral = [e for text, doc in zip(texts, got) for e in doc if any(ord(c) > 0xFFFF for c in
                                                                     text[:e["start"]])]
    assert astral  # entities after astral characters: offsets count code points


def test_one_text_and_the_default_model(client, expected):
    text = HOSTILE[0]
    answer = client.post("/v1/ner", json={"text": text})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model": "ner", "entities": expected([text])[0]}
    assert answer.headers["content-type"] == "application/json"
    raw = client.post("/v1/ner", content=json.dumps({"text": text}, ensure_ascii=True),
                      headers={"content-type": "application/json"})
    assert raw.json() == answer.json()  # \\u escapes and surrogate pairs in the request
    empty = client.post("/v1/ner", json={"texts": []})
    assert empty.status_code == 200 and empty.json()["entities"] == []
    tiny = client.post("/v1/ner", json={"texts": SAMPLE_TEXTS, "model": "tiny"})
    assert tiny.status_code == 200 and tiny.json()["model"] == "tiny"
    assert len(tiny.json()["entities"]) == len(SAMPLE_TEXTS)


def test_many_concurrent_clients_get_their_own_results(client, expected, server):
    texts = many_texts(96)
    want = dict(zip(texts, expected(texts)))
    batches_before = _metric(client, "cner_batches_total", 'model="ner"')

    async def one_client(k: int, aclient) -> list[tuple[str, list]]:
        out = []
        for j in range(3):
            mine = [texts[k * 3 + j], texts[(k * 3 + j + 48) % len(texts)]]
            answer = await aclient.post("/v1/ner", json={"texts": mine})
            assert answer.status_code == 200, answer.text
            out += list(zip(mine, answer.json()["entities"]))
        return out

    async def run():
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=60,
                                     limits=limits) as aclient:
            return await asyncio.gather(*(one_client(k, aclient) for k in range(32)))

    results = [pair for per_client in asyncio.run(run()) for pair in per_client]
    assert len(results) == 32 * 3 * 2
    for text, entities in results:
        assert entities == want[text], text
    batches = _metric(client, "cner_batches_total", 'model="ner"') - batches_before
    assert 0 < batches < 96  # requests shared batches


def test_classify_texts_and_pairs_as_the_classifier(client, server):
    from cner.inference.classifier import Classifier

    clf = Classifier.load(server.senti, precision="fp32")
    texts = ["这家酒店很干净，服务也好。", "房间脏😀价格贵"]
    answer = client.post("/v1/classify", json={"texts": texts})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["model"] == "senti"
    for pred, want in zip(got["predictions"], clf.pipe(texts)):
        assert pred == {"label": want.label, "probabilities": want.probabilities}
        assert set(pred["probabilities"]) == {"neg", "pos"}
        assert abs(sum(pred["probabilities"].values()) - 1) < 1e-4
    pair = client.post("/v1/classify",
                       json={"text": "还款日怎么改", "text_pair": "如何修改还款日期"})
    want = clf("还款日怎么改", "如何修改还款日期")
    assert pair.json()["prediction"] == {"label": want.label,
                                         "probabilities": want.probabilities}
    pairs = client.post("/v1/classify", json={"texts": texts, "text_pairs": texts[::-1]})
    assert [p["label"] for p in pairs.json()["predictions"]] == [
        p.label for p in clf.pipe(list(zip(texts, texts[::-1])))]


def test_models_probes_and_metrics(client, server):
    models = client.get("/v1/models").json()
    by_name = {m["name"]: m for m in models["models"]}
    assert list(by_name) == ["ner", "tiny", "senti"]
    assert models["defaults"] == {"ner": "ner", "classification": "senti"}
    assert by_name["ner"]["task"] == "ner" and by_name["ner"]["labels"] == ["LOC", "ORG", "PER"]
    assert by_name["ner"]["scheme"] == "bio" and by_name["ner"]["encoder"]["hidden_size"] == 32
    assert "f1" in by_name["tiny"]["metrics"]  # cner train's dev scores
    assert by_name["senti"]["task"] == "classification" and by_name["senti"]["labels"] == [
        "neg", "pos"]
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}  # no key needed
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"
    client.post("/v1/ner", json={"text": "张伟在北京"})
    text = httpx.get(f"{server.url}/metrics").text
    for name in ("cner_http_requests_total", "cner_http_errors_total",
                 "cner_http_request_duration_seconds_bucket", "cner_queue_requests",
                 "cner_batch_requests_bucket", "cner_batch_chars_bucket", "cner_chars_total",
                 "cner_chars_per_second", "cner_ready 1.0"):
        assert name in text, name
    assert _metric(client, "cner_http_requests_total", 'path="/v1/ner"') >= 1
    openapi = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/v1/ner", "/v1/classify", "/v1/models"} <= set(openapi["paths"])
    schema = openapi["paths"]["/v1/ner"]["post"]["requestBody"]["content"]["application/json"]
    assert "texts" in schema["schema"]["properties"]


def _metric(client: httpx.Client, name: str, labels: str) -> float:
    text = client.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and labels in line)


# -- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {KEY}"},
                                     {"Authorization": "Bearer"}])
def test_the_api_key_is_required(server, headers):
    for method, path in (("POST", "/v1/ner"), ("POST", "/v1/classify"), ("GET", "/v1/models")):
        answer = httpx.request(method, f"{server.url}{path}", headers=headers,
                               json={"text": "张伟"})
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in answer.json()["detail"]


def test_limits_answer_413_with_the_limit(client):
    big = client.post("/v1/ner", json={"text": "中" * 30000})  # 90 kB of UTF-8 > 65536
    assert big.status_code == 413 and "65536 bytes" in big.json()["detail"]

    def chunks():  # no Content-Length: the limit holds as the body streams in
        for _ in range(40):
            yield b" " * 4096
    streamed = client.post("/v1/ner", content=chunks())
    assert streamed.status_code == 413 and "65536" in streamed.json()["detail"]
    many = client.post("/v1/ner", json={"texts": ["a"] * 65})
    assert many.status_code == 413 and "limit is 64 (--max-texts)" in many.json()["detail"]
    long = client.post("/v1/ner", json={"texts": ["a", "中" * 2001]})
    assert long.status_code == 413 and long.json()["field"] == "texts[1]"
    assert "2001 characters; the limit is 2000" in long.json()["detail"]
    assert client.post("/v1/ner", json={"text": "中" * 2000}).status_code == 200


@pytest.mark.parametrize("path, body, field, pattern", [
    ("/v1/ner", b'{"texts": ["a",', "body", "not valid JSON"),
    ("/v1/ner", b"\xff\xfe\x00", "body", "not (UTF-8|valid JSON)"),
    ("/v1/ner", b"[1, 2]", "body", "valid dictionary"),
    ("/v1/ner", {"texts": "one text"}, "texts", "valid list"),
    ("/v1/ner", {"texts": ["a", 3]}, "texts[1]", "valid string"),
    ("/v1/ner", {"text": None, "texts": None}, "text", "neither"),
    ("/v1/ner", {"text": "a", "texts": ["b"]}, "text", "both"),
    ("/v1/ner", {"txt": "a"}, "txt", "Extra inputs"),
    ("/v1/ner", {"texts": ["ok", "a\ud800b"]}, "texts[1]", "lone surrogate U\\+D800 at offset 1"),
    ("/v1/ner", {"text": "a", "model": "nope"}, "model", "no model named 'nope'"),
    ("/v1/ner", {"text": "a", "model": "senti"}, "model", "classification model"),
    ("/v1/ner", {"text": "a", "model": 1}, "model", "valid string"),
    ("/v1/classify", {"texts": ["a", "b"], "text_pairs": ["c"]}, "text_pairs", "one per text"),
    ("/v1/classify", {"text": "a", "model": "ner"}, "model", "send it to /v1/ner"),
])
def test_bad_requests_answer_422_naming_the_field(client, path, body, field, pattern):
    if isinstance(body, bytes):
        answer = client.post(path, content=body)
    else:  # ensure_ascii: a lone surrogate travels as \\ud800
        answer = client.post(path, content=json.dumps(body).encode("ascii"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert re.search(pattern, answer.json()["detail"]), answer.json()


# -- the command line -------------------------------------------------------------------------

def test_serve_help_shows_an_example():
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for text in ("Example:", "cner serve --model runs/x/model", "127.0.0.1", "CNER_API_KEY",
                 "--max-batch-chars", "--max-wait-ms"):
        assert text in result.output, text


def test_without_the_extra_serve_says_how_to_install_it(monkeypatch, tiny_model):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi raises ImportError
    result = CliRunner().invoke(main, ["serve", "--model", str(tiny_model)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and 'pip install "cner[serve]"' in lines[0] and "fastapi" in lines[0]


@pytest.mark.parametrize("argv, pattern", [
    (["-m", "MISSING_DIR"], "model directory MISSING_DIR not found"),
    (["-m", "{tiny}", "-m", "{tiny}"], "the name 'default' is given twice; name them"),
    (["-m", "a b={tiny}"], "the name 'a b' must be letters"),
    (["-m", "{tiny}", "--api-key", " "], "--api-key .* is empty"),
])
def test_serve_errors_are_one_line_before_listening(tiny_model, argv, pattern):
    argv = [a.format(tiny=tiny_model) for a in argv]
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port()), *argv])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), result.output


def test_a_port_in_use_is_one_line(tiny_model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "-m", str(tiny_model), "--port", str(port)])
    assert result.exit_code == 2
    assert re.fullmatch(rf"error: cannot listen on 127\.0\.0\.1:{port}: .*\n", result.output)


# -- the batcher and the server with fake models ----------------------------------------------

class FakeTagger:
    """A runner that finds one entity per text (its first character), records its batches,
    can wait before loading, fail on a text holding BOOM, or take its time."""

    def __init__(self, name: str = "fake", *, loaded: threading.Event | None = None,
                 delay: float = 0.0) -> None:
        self.name, self.loaded, self.delay = name, loaded, delay
        self.batches: list[list[str]] = []

    def load(self) -> None:
        if self.loaded is not None:
            assert self.loaded.wait(30)

    def run(self, items: list) -> list:
        from cner.inference.predictor import Entity

        self.batches.append(list(items))
        if any("BOOM" in text for text in items):
            raise RuntimeError("the model blew up")
        time.sleep(self.delay)
        return [[Entity(0, 1, "X", text[:1], 0.5)] if text else [] for text in items]


def fake_model(name: str = "fake"):
    from cner.serving.registry import ServedModel

    meta = SimpleNamespace(task="ner", labels=["O", "B-X", "I-X"], head="crf", scheme="bio",
                           max_length=128)
    return ServedModel(name, Path("/nonexistent"), meta)


def test_batcher_batches_queued_requests_within_the_budget():
    from cner.serving.batcher import Batcher

    gate = threading.Event()
    a, b = FakeTagger("a", loaded=gate), FakeTagger("b")
    batcher = Batcher({"a": a, "b": b}, max_batch_chars=35, max_wait_ms=0).start()
    try:
        texts = {"1": "x" * 10, "2": "y" * 10, "3": "z" * 10, "4": "w" * 30, "5": "v" * 6}
        futures = [batcher.submit("a", [texts["1"]], 10), batcher.submit("b", ["other"], 5),
                   *(batcher.submit("a", [texts[k]], len(texts[k])) for k in "2345")]
        assert batcher.queue_depth() == (6, 6)  # the model thread is still loading
        gate.set()
        results = [f.result(timeout=10) for f in futures]
    finally:
        batcher.close(10)
    # a's first three fit in 35 characters, the fourth does not; b's request kept its place
    # (before the second batch of a); 30 + 6 characters do not fit either
    assert a.batches == [["x" * 10, "y" * 10, "z" * 10], ["w" * 30], ["v" * 6]]
    assert b.batches == [["other"]]
    assert [r[0][0].text for r in results] == ["x", "o", "y", "z", "w", "v"]


def test_a_batch_as_large_as_the_last_one_starts_without_waiting_out_the_gap():
    """Closed-loop clients: once as many requests as the last batch held have come, the
    batch runs; fewer wait for the gap; requests that queued during a run mean more clients,
    so the next batch waits for the gap again (here 1 s, to tell it from at once)."""
    from cner.serving.batcher import Batcher

    gate = threading.Event()
    fake = FakeTagger(loaded=gate)
    batcher = Batcher({"fake": fake}, max_wait_ms=5000).start()
    batcher.gap = 1.0

    def answered(texts: str) -> float:
        started = time.monotonic()
        for future in [batcher.submit("fake", [t], 1) for t in texts]:
            future.result(timeout=30)
        return time.monotonic() - started

    try:
        first = [batcher.submit("fake", [t], 1) for t in "abc"]
        gate.set()
        assert [f.result(timeout=30)[0][0].text for f in first] == ["a", "b", "c"]
        assert answered("def") < 0.5  # as many as the last batch: at once
        assert answered("gh") >= 0.9  # fewer: the gap
        assert answered("ij") < 0.5  # the last batch held 2
        fake.delay = 0.3
        slow = batcher.submit("fake", ["k"], 1), batcher.submit("fake", ["l"], 1)
        time.sleep(0.1)  # k and l run; m and n queue meanwhile
        late = answered("mn")
        assert all(f.result(timeout=30) for f in slow)
        assert late >= 0.9 + 0.2  # after the run, the gap: m and n are more clients
    finally:
        batcher.close(30)
    assert fake.batches == [list("abc"), list("def"), list("gh"), list("ij"), list("kl"), list("mn")]


def test_batching_off_runs_each_request_alone():
    from cner.serving.batcher import Batcher

    gate = threading.Event()
    fake = FakeTagger(loaded=gate)
    batcher = Batcher({"fake": fake}, batching=False).start()
    futures = [batcher.submit("fake", [t], 1) for t in "abc"]
    gate.set()
    assert [f.result(timeout=10)[0][0].text for f in futures] == ["a", "b", "c"]
    batcher.close(10)
    assert fake.batches == [["a"], ["b"], ["c"]]


@contextlib.contextmanager
def in_process_server(runner, *, api_key=None):
    """The application over ``runner`` served by uvicorn on a free port, in a thread."""
    import uvicorn

    from cner.serving.app import create_app
    from cner.serving.batcher import Batcher
    from cner.serving.metrics import ServerMetrics
    from cner.serving.server import Server, bind_socket

    metrics = ServerMetrics()
    batcher = Batcher({runner.name: runner}, max_wait_ms=30, metrics=metrics)
    app = create_app({runner.name: fake_model(runner.name)}, batcher, api_key=api_key,
                     metrics=metrics)
    sock = bind_socket("127.0.0.1", 0)
    server = Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_readiness_only_after_loading_and_warm_up():
    gate = threading.Event()
    with in_process_server(FakeTagger(loaded=gate)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        loading = httpx.get(f"{url}/readyz")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        early = httpx.post(f"{url}/v1/ner", json={"text": "abc"})
        assert early.status_code == 503 and early.headers["retry-after"] == "1"
        gate.set()
        wait_ready(url, timeout=10)
        assert httpx.post(f"{url}/v1/ner", json={"text": "abc"}).status_code == 200


def test_a_failing_request_gets_500_its_batch_mates_their_results_and_serving_goes_on():
    fake = FakeTagger()
    with in_process_server(fake) as url:
        wait_ready(url, timeout=10)

        async def together():
            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                return await asyncio.gather(*(c.post("/v1/ner", json={"texts": [t]})
                                              for t in ("ok1", "xBOOMx", "ok2")))

        answers = asyncio.run(together())
        assert [a.status_code for a in answers] == [200, 500, 200]
        assert "failed on this request (RuntimeError: the model blew up)" in answers[1].json()[
            "detail"]
        assert answers[0].json()["entities"] == [[entity_dict(FakeTagger().run(["ok1"])[0][0])]]
        assert any(len(b) > 1 for b in fake.batches)  # they were batched, then run alone
        later = httpx.post(f"{url}/v1/ner", json={"texts": ["fine", ""]})
        assert later.status_code == 200 and later.json()["entities"][1] == []
        metrics = httpx.get(f"{url}/metrics").text
        assert 'cner_batch_failures_total{model="fake"}' in metrics
        assert 'cner_http_errors_total{code="500",path="/v1/ner"} 1.0' in metrics


SLOW_SERVER = """
import sys, time
from pathlib import Path
import cner.serving.registry as registry
from cner.serving.server import ServeOptions, serve

run = registry.TaggerRunner.run
def slow(self, items):
    if any("SLOW" in text for text in items):
        Path(sys.argv[3]).touch()
        time.sleep(2.0)
    return run(self, items)
registry.TaggerRunner.run = slow
serve([("ner", sys.argv[1])], ServeOptions(port=int(sys.argv[2]), max_wait_ms=0))
print("returned", flush=True)
"""


def test_sigterm_finishes_the_request_in_flight_then_exits(tmp_path, tiny_model):
    script, marker = tmp_path / "slow_server.py", tmp_path / "started"
    script.write_text(SLOW_SERVER, "utf-8")
    port = free_port()
    process, url = start_process([sys.executable, str(script), str(tiny_model), str(port),
                                  str(marker)], port)
    answer: list = []
    thread = threading.Thread(target=lambda: answer.append(httpx.post(
        f"{url}/v1/ner", json={"texts": ["SLOW 张伟在北京", "李娜"]}, timeout=30)))
    thread.start()
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the slow request never reached the model"
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(httpx.TransportError):  # no longer accepting
        httpx.get(f"{url}/healthz", timeout=2)
    thread.join(30)
    out, err = process.communicate(timeout=30)
    assert answer and answer[0].status_code == 200, answer
    assert len(answer[0].json()["entities"]) == 2
    assert process.returncode == 0, err
    assert "returned" in out and "Shutting down" in err


def test_a_model_that_fails_to_load_stops_the_server_with_one_line(tmp_path, tiny_model):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "cner", "serve", "-m", str(broken), "--port",
                           str(port)], capture_output=True, text=True, env=server_env(),
                          timeout=120)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the server stopped: loading the models failed: "), last
    assert "Traceback" not in done.stderr
