"""``momentkit make-search-queries``: the LLM client against a scripted OpenAI-compatible server on
127.0.0.1 (retries, concurrency limit, cache), prompt files and answer reading, grouping with hand
vectors and with the real MiniLM encoder, and the whole pipeline on real YouCook2 captions."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from conftest import DATA
from momentkit.cli.main import main
from momentkit.data.annotations import read_annotations
from momentkit.errors import InputError
from momentkit.searchq import (
    ChatClient,
    LLMError,
    SearchQueryOptions,
    build_benchmark,
    group_per_video,
    load_prompts,
    query_length,
    similarity_components,
    union_windows,
)
from momentkit.searchq.prompting import AnswerError, parse_levels, parse_query, parse_verdict, read_examples

YC2_VAL = DATA / "youcook2" / "yc2_val.json"
SALAD, DAL = "v_xHr8X2Wpmno", "v_a5FoLWnEiAI"  # the first two videos of yc2_val.json


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# -- a scripted OpenAI-compatible server -----------------------------------------------------------------

class ScriptedLLM:
    """``POST /v1/chat/completions`` answered by ``script(body)``: a string (the assistant's content), or
    ``(status, headers, raw_body)`` for anything else. Records every request and the peak concurrency."""

    def __init__(self, script, delay: float = 0.0) -> None:
        self.script = script
        self.delay = delay
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with llm.lock:
                    llm.bodies.append({**body, "_auth": self.headers.get("Authorization")})
                    llm.inflight += 1
                    llm.max_inflight = max(llm.max_inflight, llm.inflight)
                try:
                    time.sleep(llm.delay)
                    if self.path != "/v1/chat/completions":
                        out = (404, {}, b'{"error": {"message": "no such route"}}')
                    else:
                        out = llm.script(body)
                    if isinstance(out, str):
                        out = (200, {}, json.dumps({"choices": [{"index": 0, "message": {
                            "role": "assistant", "content": out}}]}).encode())
                    status, headers, raw = out
                finally:
                    # leave the in-flight count before answering: once the answer is written, the
                    # client may send its next request before this handler runs another line
                    with llm.lock:
                        llm.inflight -= 1
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(script, delay=0.0):
        servers.append(ScriptedLLM(script, delay))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _client(server, tmp_path=None, **kw):
    kw.setdefault("backoff", 0.001)
    kw.setdefault("jitter", 0.0)
    return ChatClient(base_url=server.base_url, model="scripted", cache_dir=tmp_path, **kw)


def _echo(body):
    return "echo: " + body["messages"][-1]["content"]


def _msgs(text):
    return [{"role": "user", "content": text}]


# -- the client --------------------------------------------------------------------------------------------

def test_client_request_shape_and_cache(serve, tmp_path):
    server = serve(_echo)
    client = _client(server, tmp_path / "cache", api_key="sk-test", params={"temperature": 0.0, "max_tokens": 7})
    assert client.chat(_msgs("hello")) == "echo: hello"
    body = server.bodies[0]
    assert body["model"] == "scripted" and body["messages"] == _msgs("hello")
    assert body["temperature"] == 0.0 and body["max_tokens"] == 7 and body["_auth"] == "Bearer sk-test"
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 1
    # a second client on the same cache answers without a request; other messages do go out
    again = _client(server, tmp_path / "cache", params={"temperature": 0.0, "max_tokens": 7})
    assert again.chat(_msgs("hello")) == "echo: hello" and server.count == 1
    assert again.stats.as_dict() == {"calls": 1, "cache_hits": 1, "requests": 0, "retries": 0}
    # parameters are part of the key
    other = _client(server, tmp_path / "cache", params={"temperature": 0.7})
    assert other.chat(_msgs("hello")) == "echo: hello" and server.count == 2
    # no key: no Authorization header
    assert server.bodies[1]["_auth"] is None
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_client_endpoint_from_environment(serve, monkeypatch):
    server = serve(_echo)
    for name in ("MOMENTKIT_LLM_BASE_URL", "MOMENTKIT_LLM_MODEL", "MOMENTKIT_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("MOMENTKIT_LLM_MODEL", "m1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    client = ChatClient.from_env()
    assert client.base_url == server.base_url  # trailing slash removed
    assert client.chat(_msgs("x")) == "echo: x"
    assert server.bodies[0]["model"] == "m1" and server.bodies[0]["_auth"] == "Bearer sk-openai"
    monkeypatch.setenv("MOMENTKIT_LLM_API_KEY", "sk-mk")  # the momentkit variable wins
    assert ChatClient.from_env(model="m2").api_key == "sk-mk"
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(InputError, match="MOMENTKIT_LLM_BASE_URL"):
        ChatClient.from_env()
    monkeypatch.delenv("MOMENTKIT_LLM_MODEL")
    with pytest.raises(InputError, match="no LLM model"):
        ChatClient.from_env(base_url="http://127.0.0.1:1/v1")


def test_client_retries_with_exponential_backoff(serve):
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def script(body):
        text = body["messages"][-1]["content"]
        with lock:
            n = seen[text] = seen.get(text, 0) + 1
        if text == "flaky" and n <= 2:
            return (500, {}, b'{"error": {"message": "overloaded"}}')
        if text == "limited" and n == 1:
            return (429, {"Retry-After": "3"}, b"slow down")
        if text == "garbled" and n == 1:
            return (200, {}, b"<html>proxy error</html>")
        if text == "down":
            return (503, {}, b"")
        if text == "denied":
            return (401, {}, b'{"error": {"message": "bad key"}}')
        return "ok " + text

    server = serve(script)
    waits: list[float] = []
    client = _client(server, backoff=0.5, max_backoff=10.0, sleep=waits.append, max_retries=3)
    assert client.chat(_msgs("flaky")) == "ok flaky"
    assert waits == [0.5, 1.0] and seen["flaky"] == 3  # 0.5 * 2**0, 0.5 * 2**1
    waits.clear()
    assert client.chat(_msgs("limited")) == "ok limited"
    assert waits == [3.0]  # the server's Retry-After
    waits.clear()
    assert client.chat(_msgs("garbled")) == "ok garbled" and waits == [0.5]
    waits.clear()
    with pytest.raises(LLMError, match=r"HTTP 503.*gave up after 4 attempts"):
        client.chat(_msgs("down"))
    assert seen["down"] == 4 and waits == [0.5, 1.0, 2.0]
    with pytest.raises(LLMError, match="HTTP 401: bad key"):  # not retried
        client.chat(_msgs("denied"))
    assert seen["denied"] == 1
    assert client.stats.retries == 2 + 1 + 1 + 3


def test_client_unreachable_endpoint_is_one_error(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    client = ChatClient(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=2, backoff=0.25,
                        jitter=0.0, sleep=waits.append)
    with pytest.raises(LLMError, match="cannot reach the endpoint"):
        client.chat(_msgs("x"))
    assert waits == [0.25, 0.5] and client.stats.requests == 3


def test_client_concurrency_limit(serve):
    server = serve(_echo, delay=0.05)
    client = _client(server, concurrency=3)
    items = [f"q{i}" for i in range(12)]
    answers = client.map(lambda t: client.chat(_msgs(t)), items)
    assert answers == [f"echo: q{i}" for i in range(12)]  # in order
    assert server.max_inflight == 3
    # the limit holds for threads that are not the client's own as well
    server.max_inflight = 0
    threads = [threading.Thread(target=client.chat, args=(_msgs(f"t{i}"),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.max_inflight <= 3 and server.count == 20


def test_client_map_stops_at_the_first_failure(serve, tmp_path):
    server = serve(lambda b: (400, {}, b"bad") if b["messages"][-1]["content"] == "q0" else _echo(b), delay=0.02)
    client = _client(server, tmp_path, concurrency=2)
    with pytest.raises(LLMError, match="HTTP 400"):
        client.map(lambda t: client.chat(_msgs(t)), [f"q{i}" for i in range(40)])
    assert server.count < 40  # the rest was cancelled


# -- prompts and answers -----------------------------------------------------------------------------------

def test_shipped_prompts_and_examples():
    for dataset in ("youcook2", "activitynet", "generic"):
        p = load_prompts(dataset)
        msgs = p.rewrite("add some salt")
        assert msgs[0]["role"] == "system" and msgs[-1] == {"role": "user", "content": "Caption: add some salt"}
        n = len(p.examples["rewriter"])
        assert n >= 2 and len(msgs) == 2 + 2 * n
        assert [m["role"] for m in msgs[1:-1]] == ["user", "assistant"] * n
        for m in msgs[2:-1:2]:  # few-shot answers are in the requested shape
            parse_query(m["content"])
        for m in p.rewrite("x", levels=True)[2:-1:2]:
            parse_levels(m["content"])
        for m in p.validate("c", "q")[2:-1:2]:
            parse_verdict(m["content"])
        assert p.aggregate(["a", "b"])[-1]["content"] == "Queries:\n- a\n- b"
        assert "{" not in p.rewrite("x")[0]["content"].replace('{"query"', "")  # placeholders filled
    assert "cooking" in load_prompts("youcook2").rewrite("x")[0]["content"]


def test_prompt_overrides_and_errors(tmp_path):
    (tmp_path / "rewriter.txt").write_text("comment\n[system]\nBe brief. {dataset_hint}\n[user]\nC={caption} {keep}\n"
                                           "[fix]\nagain: {error}\n[retry]\nno: {reason}\n")
    ex = {"hint": "H!", "rewriter": [{"caption": "a b c", "query": "a"}]}
    (tmp_path / "mine.json").write_text(json.dumps(ex))
    p = load_prompts(str(tmp_path / "mine.json"), tmp_path)
    msgs = p.rewrite("x y")
    assert msgs == [{"role": "system", "content": "Be brief. H!"}, {"role": "user", "content": "C=a b c {keep}"},
                    {"role": "assistant", "content": '{"query": "a"}'}, {"role": "user", "content": "C=x y {keep}"}]
    assert p.dataset == "mine" and p.validate("c", "q")[0]["content"].startswith("You check")  # shipped file
    assert p.fix("rewriter", msgs, "bad", "oops")[-1]["content"] == "again: oops"
    (tmp_path / "rewriter.txt").write_text("[system]\nx\n[user]\ny\n")
    with pytest.raises(InputError, match=r"rewriter.txt.*field 'fix'.*missing or empty section \[fix\]"):
        load_prompts("generic", tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"validator": [{"caption": "c", "query": "q", "reason": "r",
                                                                   "consistent": "maybe"}]}))
    with pytest.raises(InputError, match=r"field 'validator\[0\].consistent'"):
        read_examples(tmp_path / "bad.json")
    with pytest.raises(InputError, match="unknown dataset 'klingon'.*activitynet, generic, youcook2"):
        load_prompts("klingon")


def test_reading_answers():
    assert parse_query('{"query": "season food"}') == "season food"
    assert parse_query('Sure!\n```json\n{"query": "  \\"chop   onions\\" "}\n```\nHope it helps') == "chop onions"
    assert parse_query('<think>maybe {"query": "no"}</think>{"query": "fry meat"}') == "fry meat"
    assert parse_levels('{"s1": "a b", "S2": "a", "s3": "x"}') == {"S1": "a b", "S2": "a", "S3": "x"}
    assert parse_verdict('{"consistent": false, "reason": "adds  sugar"}') == (False, "adds sugar")
    assert parse_verdict('{"consistent": "Yes"}') == (True, "")
    for bad, match in [("season food", "no JSON object"), ('{"q": "x"}', "no 'query'"), ('{"query": " "}', "empty"),
                       ('{"query": 3}', "not a string"), ("", "empty"), ("[1, 2]", "no JSON object")]:
        with pytest.raises(AnswerError, match=match):
            parse_query(bad)
    with pytest.raises(AnswerError, match="'S3'"):
        parse_levels('{"S1": "a", "S2": "b"}')
    with pytest.raises(AnswerError, match="true or false"):
        parse_verdict('{"consistent": "perhaps"}')


# -- grouping ----------------------------------------------------------------------------------------------

def test_threshold_is_inclusive_and_groups_are_connected_components():
    e = np.array([[1.0, 0.0], [3.0, 4.0]])  # cosine exactly 3/5 = 0.6
    assert similarity_components(e, 0.6).tolist() == [0, 0]
    assert similarity_components(e, np.nextafter(0.6, 1.0)).tolist() == [0, 1]
    # a chain at 0, 30, 60 degrees: neighbours at cos 30 = 0.866, the ends at cos 60 = 0.5
    ang = np.deg2rad([0.0, 30.0, 60.0, 180.0])
    chain = np.stack([np.cos(ang), np.sin(ang)], axis=1) * np.array([[1.0], [2.0], [0.5], [3.0]])
    assert similarity_components(chain, 0.85).tolist() == [0, 0, 0, 1]
    assert similarity_components(chain, 0.9).tolist() == [0, 1, 2, 3]
    # numbered by first appearance; never across videos
    same = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert group_per_video(["b", "b", "b", "a"], same).tolist() == [0, 1, 0, 2]
    assert group_per_video(["a", "b", "a", "b"], same).tolist() == [0, 1, 0, 2]
    with pytest.raises(InputError, match="threshold"):
        similarity_components(e, 1.5)


def test_union_windows():
    assert union_windows([(5, 20), (0, 10), (30, 40), (35, 38)]) == ((0, 20), (30, 40))
    assert union_windows([(0, 10), (10, 20)]) == ((0, 10), (10, 20))  # touching windows stay apart
    assert union_windows([(5, 20), (0, 10), (0, 10)], merge=False) == ((0, 10), (5, 20))


def test_query_length():
    assert [query_length(q) for q in ("Season food.", "Tear the lettuce leaves in half again .", "", "a-b c")] \
        == [2, 7, 0, 2]


@pytest.fixture(scope="module")
def minilm():
    import torch

    from momentkit.searchq import load_encoder

    torch.set_num_threads(1)
    return load_encoder()


def test_minilm_groups_paraphrases_of_real_captions(minilm):
    # real YouCook2 captions (yc2_val.json), each with a hand-written paraphrase
    captions = ["combine lemon juice sumac garlic salt and oil in a bowl", "chop lettuce and place it in a bowl",
                "pour the dressing over the salad and mix", "soak some black lentils and red kidney beans in water",
                "top the dal with cream and cilantro", "cover with a lid and stir"]
    paraphrases = ["mix lemon juice, sumac, garlic, salt and oil in a bowl", "chop the lettuce and put it in a bowl",
                   "pour the dressing on the salad and mix it", "soak black lentils and kidney beans in water"]
    texts = captions + paraphrases
    emb = minilm.encode(texts)
    assert emb.shape == (10, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    labels = similarity_components(emb, 0.85)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]  # each paraphrase joins its caption, nothing else
    # the same sentences in two videos stay apart
    assert len(set(group_per_video(["v1"] * 10 + ["v2"] * 10, np.concatenate([emb, emb]), 0.85).tolist())) == 12
    # threshold semantics on a real pair: grouped at exactly its cosine, apart just above it
    pair = emb[[1, 7]].astype(np.float64)
    cos = float(pair[0] @ pair[1] / np.linalg.norm(pair[0]) / np.linalg.norm(pair[1]))
    assert 0.85 < cos < 1.0
    assert similarity_components(pair, cos - 1e-9).tolist() == [0, 0]
    assert similarity_components(pair, cos + 1e-9).tolist() == [0, 1]


# -- the whole pipeline ------------------------------------------------------------------------------------

# caption -> rewriter answers (first, after [fix], after [retry]); every other caption is unknown
REWRITES = {
    "pick the ends off the verdalago": {"first": '{"query": "prepare the vegetables"}'},
    "combine lemon juice sumac garlic salt and oil in a bowl": {"first": '{"query": "make a cake"}',
                                                               "retry": '{"query": "make a dressing"}'},
    "chop lettuce and place it in a bowl": {"first": '{"query": "prepare vegetables"}'},
    "add verdalago pepper cucumbers tomatoes herbs and onions to the lettuce in the bowl": {
        "first": '{"query": "fry the onions"}', "retry": '{"query": "fry onions again"}'},
    "pour the dressing over the salad and mix": {"first": '{"query": "mix the salad"}'},
    "add the fried pita to the salad and mix": {"first": '{"query": "Mix the salad"}'},
    "soak some black lentils and red kidney beans in water": {"first": '{"query": "soak beans"}'},
    "cook them in a pot of water with lid on": {"first": '{"query": "cook beans"}'},
    "blend the lentil and red kidney beans in the pot": {"first": '{"query": "blend beans"}'},
    "heat a pan add butter oil cumin seeds coriander seeds and onion and stir": {"first": '{"query": "cook onions"}'},
    "cover with a lid and stir": {"first": '{"query": "cover the pot"}'},
    "add chopped tomatoes mix it well and cover": {"first": '{"query": "cover the pot"}'},
    "mix dal makhni masala red chili powder and turmeric powder in a small bowl of water": {
        "first": '{"query": "mix spices"}'},
    "pour the sauce in the pan and add the lentil and red kidney beans to the pot and mix them well": {
        "first": "Sure! The search query is: add beans to the sauce",
        "fix": 'OK:\n```json\n{"query": "add beans to the sauce"}\n```'},
    "add some salt": {"first": "I cannot help with that.", "fix": "Still no."},
    "top the dal with cream and cilantro": {"first": '{"query": "garnish the dish"}'},
}
INCONSISTENT = {"make a cake", "fry the onions", "fry onions again"}
AGGREGATES = {("prepare the vegetables", "prepare vegetables"): '{"query": "prepare vegetables"}'}


def _last(messages, prefix):
    return next(m["content"] for m in reversed(messages) if m["role"] == "user" and m["content"].startswith(prefix))


def cooking_script(body):
    """The scripted LLM: a pure function of the request."""
    msgs = body["messages"]
    fix = msgs[-1]["content"].startswith("Your answer could not be read")
    retry = any(m["role"] == "user" and m["content"].startswith("A reviewer found") for m in msgs)
    system = msgs[0]["content"]
    if system.startswith("You check"):  # validator
        caption, query = (line.split(": ", 1)[1] for line in _last(msgs, "Caption:").splitlines())
        if query == "garnish the dish" and not fix:
            return "Looks fine."
        return json.dumps({"consistent": query not in INCONSISTENT, "reason": "the caption says otherwise"})
    if system.startswith("You are given several"):  # aggregator
        queries = tuple(line[2:] for line in _last(msgs, "Queries:").splitlines()[1:])
        return AGGREGATES.get(queries, "no idea")
    caption = _last(msgs, "Caption:")[len("Caption: "):]
    answers = REWRITES[caption]
    if "levels" in system:
        raise AssertionError("levels not scripted here")
    return answers["retry" if retry else "fix" if fix else "first"]


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pipeline_on_youcook2(serve, tmp_path, minilm):
    server = serve(cooking_script)
    out = tmp_path / "yc2_s.jsonl"
    client = _client(server, tmp_path / "cache", concurrency=4)
    report = build_benchmark(YC2_VAL, out, client=client, prompts=load_prompts("youcook2"), encoder=minilm,
                             options=SearchQueryOptions(limit=2))
    rows = _rows(out)
    got = [(r["qid"], r["query"], r["relevant_windows"]) for r in rows]
    assert got == [
        (f"{SALAD}_g0", "prepare vegetables", [[47, 60], [91, 98]]),  # aggregated
        (f"{SALAD}_g1", "make a dressing", [[67, 89]]),  # flagged, rewritten, kept
        (f"{SALAD}_g2", "mix the salad", [[153, 162], [163, 185]]),  # same text: no aggregator call
        (f"{DAL}_g0", "soak beans", [[26, 36]]),
        (f"{DAL}_g1", "cook beans", [[38, 68]]),
        (f"{DAL}_g2", "blend beans", [[172, 192]]),
        (f"{DAL}_g3", "cook onions", [[201, 248]]),
        (f"{DAL}_g4", "cover the pot", [[315, 325], [342, 360]]),
        (f"{DAL}_g5", "mix spices", [[366, 403]]),
        (f"{DAL}_g6", "add beans to the sauce", [[417, 499]]),  # read after one [fix] round
        (f"{DAL}_g7", "garnish the dish", [[556, 582]]),  # validator answered after one [fix] round
    ]
    assert rows[0]["captions"] == ["pick the ends off the verdalago", "chop lettuce and place it in a bowl"]
    assert rows[0]["caption_qids"] == [f"{SALAD}_0", f"{SALAD}_2"]
    assert rows[0]["rewrites"] == ["prepare the vegetables", "prepare vegetables"]
    assert rows[0]["duration"] == 206.86
    back = read_annotations(out)  # the data layer reads it back
    assert len(back) == 11 and back[4].windows == ((38.0, 68.0),)

    counts = report["pipeline"]["S"]
    assert counts == {"captions": 16, "empty_captions_skipped": 0, "kept": 14, "flagged": 2, "recovered": 1,
                      "dropped_flagged": 1, "dropped_unreadable": 1, "validator_unreadable": 0, "queries": 11,
                      "multi_caption_groups": 3, "aggregator_calls": 1, "aggregator_fallbacks": 0,
                      "windows_merged": 0}
    source, search = report["table"]
    assert source["name"] == "yc2_val" and search["name"] == "yc2_val-S"
    assert (source["videos"], source["queries"], source["moments_per_query"], source["multi_queries"]) == (2, 16, 1, 0)
    assert source["duration_per_video"] == pytest.approx((206.86 + 595.85) / 2)
    assert (search["videos"], search["queries"], search["multi_queries"]) == (2, 11, 3)
    assert search["moments_per_query"] == pytest.approx(14 / 11)
    assert search["moments_per_query_multi"] == 2.0 and search["multi_pct"] == pytest.approx(300 / 11)
    assert search["query_length_mean"] == pytest.approx(29 / 11)
    # 16 rewrites + 2 [fix] + 2 [retry]; 15 verdicts + 1 [fix] + 2 after the retries; 1 aggregation
    assert report["llm"] == {"calls": 39, "cache_hits": 0, "requests": 39, "retries": 0}
    assert server.count == 39
    assert json.loads((tmp_path / "yc2_s.report.json").read_text()) == report

    # a repeated run costs nothing: every answer comes from the cache, and the output is the same
    first = out.read_bytes()
    again = _client(server, tmp_path / "cache", concurrency=4)
    report2 = build_benchmark(YC2_VAL, out, client=again, prompts=load_prompts("youcook2"), encoder=minilm,
                              options=SearchQueryOptions(limit=2))
    assert server.count == 39 and report2["llm"] == {"calls": 39, "cache_hits": 39, "requests": 0, "retries": 0}
    assert out.read_bytes() == first


def test_interrupted_run_resumes_without_paying_twice(serve, tmp_path, minilm):
    broken = {"on": True}

    def script(body):
        last = body["messages"][-1]["content"]
        if broken["on"] and last == "Caption: add some salt":
            return (400, {}, b'{"error": {"message": "context length exceeded"}}')
        return cooking_script(body)

    server = serve(script)
    kwargs = dict(prompts=load_prompts("youcook2"), encoder=minilm, options=SearchQueryOptions(limit=2))
    with pytest.raises(LLMError, match="context length exceeded"):
        build_benchmark(YC2_VAL, tmp_path / "o.jsonl", client=_client(server, tmp_path / "c", concurrency=2), **kwargs)
    assert not (tmp_path / "o.jsonl").exists()
    answered = {json.dumps(b["messages"]) for b in server.bodies
                if b["messages"][-1]["content"] != "Caption: add some salt"}
    n_first = server.count
    broken["on"] = False
    build_benchmark(YC2_VAL, tmp_path / "o.jsonl", client=_client(server, tmp_path / "c", concurrency=2), **kwargs)
    assert 0 < len(answered) < 39  # the first run stopped part-way
    resent = [b for b in server.bodies[n_first:] if json.dumps(b["messages"]) in answered]
    assert resent == []  # nothing answered before is asked again ...
    assert server.count - n_first == 39 - len(answered)  # ... and everything else is asked once
    assert len(_rows(tmp_path / "o.jsonl")) == 11


def test_levels_and_no_validation(serve, tmp_path, minilm):
    levels = {
        "pick the ends off the verdalago": ("pick the ends off the verdalago", "trim vegetables", "prepare food"),
        "combine lemon juice sumac garlic salt and oil in a bowl": ("combine lemon juice and oil in a bowl",
                                                                    "make a dressing", "mix something"),
        "chop lettuce and place it in a bowl": ("chop lettuce into a bowl", "chop lettuce", "prepare food"),
        "add verdalago pepper cucumbers tomatoes herbs and onions to the lettuce in the bowl": (
            "add vegetables to the lettuce", "add vegetables", "Prepare food"),
        "pour the dressing over the salad and mix": ("pour dressing over the salad", "dress the salad", "mix something"),
        "add the fried pita to the salad and mix": ("add pita to the salad", "add pita", "add something"),
    }

    def script(body):
        msgs = body["messages"]
        assert "S1" in msgs[0]["content"] or msgs[0]["content"].startswith("You are given")
        if msgs[0]["content"].startswith("You are given"):
            return '{"query": "mix something"}'
        s1, s2, s3 = levels[_last(msgs, "Caption:")[len("Caption: "):]]
        return json.dumps({"S1": s1, "s2": s2, "S3": s3})

    server = serve(script)
    report = build_benchmark(YC2_VAL, tmp_path / "lv.jsonl", client=_client(server, tmp_path / "c"),
                             prompts=load_prompts("youcook2"), encoder=minilm,
                             options=SearchQueryOptions(levels=True, validate=False, limit=1))
    assert server.count == 6  # one rewrite per caption, no validator, no aggregator call needed
    assert set(report["outputs"]) == {"S1", "S2", "S3"}
    s3 = _rows(tmp_path / "lv_S3.jsonl")
    assert [(r["query"], r["relevant_windows"]) for r in s3] == [
        ("prepare food", [[47, 60], [91, 98], [99, 137]]),
        ("mix something", [[67, 89], [153, 162]]),
        ("add something", [[163, 185]]),
    ]
    assert {r["level"] for r in s3} == {"S3"}
    assert len(_rows(tmp_path / "lv_S1.jsonl")) == 6 and len(_rows(tmp_path / "lv_S2.jsonl")) == 6
    names = [row["name"] for row in report["table"]]
    assert names == ["yc2_val", "yc2_val-S1", "yc2_val-S2", "yc2_val-S3"]
    assert report["table"][3]["multi_queries"] == 2 and report["table"][3]["moments_per_query"] == 2.0
    assert report["pipeline"]["S3"]["flagged"] == 0 and report["pipeline"]["S3"]["kept"] == 6


def test_aggregator_fallback_and_window_merging(serve, tmp_path):
    captions = tmp_path / "caps.json"
    captions.write_text(json.dumps({"vidA": {"duration": 100, "timestamps": [[0, 10], [5, 20], [30, 40], [50, 60]],
                                             "sentences": ["c0", "c1", "c2", "c3"]}}))
    words = {"c0": "alpha", "c1": "beta", "c2": "gamma", "c3": "delta"}
    vectors = {"alpha": [1.0, 0.0], "beta": [0.95, 0.31225], "gamma": [0.8, 0.6], "delta": [0.0, 1.0]}

    def script(body):
        msgs = body["messages"]
        if msgs[0]["content"].startswith("You are given"):
            return "cannot"  # the aggregator never answers in shape
        return json.dumps({"query": words[_last(msgs, "Caption:")[len("Caption: "):]]})

    def encode(texts):
        return np.array([vectors[t] for t in texts])

    server = serve(script)
    for merge, windows, merged in ((True, [[0, 20], [30, 40]], 1), (False, [[0, 10], [5, 20], [30, 40]], 0)):
        report = build_benchmark(captions, tmp_path / f"o{merge}.jsonl", client=_client(server, tmp_path / "c"),
                                 prompts=load_prompts("generic"), encoder=encode,
                                 options=SearchQueryOptions(validate=False, threshold=0.7, merge_windows=merge))
        rows = _rows(tmp_path / f"o{merge}.jsonl")
        # cosines: alpha-beta 0.95, beta-gamma 0.947, alpha-gamma 0.8, delta < 0.7 with all; beta is the medoid
        assert [(r["query"], r["relevant_windows"]) for r in rows] == [("beta", windows), ("delta", [[50, 60]])]
        counts = report["pipeline"]["S"]
        assert (counts["aggregator_calls"], counts["aggregator_fallbacks"], counts["windows_merged"]) == (1, 1, merged)
    assert server.count == 4 + 2  # 4 rewrites + the aggregation and its [fix]; the second run hit the cache


# -- the command line --------------------------------------------------------------------------------------

def test_cli(serve, tmp_path, monkeypatch, capsys, minilm):
    server = serve(cooking_script)
    monkeypatch.setenv("MOMENTKIT_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("MOMENTKIT_LLM_MODEL", "scripted")
    out = tmp_path / "yc2_s.jsonl"
    code = main(["make-search-queries", str(YC2_VAL), "--out", str(out), "--dataset", "youcook2", "--limit", "2",
                 "--cache", str(tmp_path / "cache"), "--concurrency", "3", "--threshold", "0.85"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "# queries" in printed and "yc2_val-S" in printed and "% multi. queries" in printed
    assert "27.27" in printed  # 3 of 11 queries are multi-moment
    assert len(_rows(out)) == 11 and (tmp_path / "yc2_s.report.json").is_file()
    assert server.max_inflight <= 3


def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys):
    for name in ("MOMENTKIT_LLM_BASE_URL", "OPENAI_BASE_URL", "MOMENTKIT_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    detection = tmp_path / "tal.json"
    detection.write_text(json.dumps({"database": {"v1": {"subset": "test", "duration": 10.0, "annotations": [
        {"segment": [1.0, 2.0], "label": "jump"}]}}}))
    cases = [
        ([str(YC2_VAL), "--out", str(tmp_path / "o.jsonl")], "no LLM endpoint"),
        ([str(YC2_VAL), "--out", str(tmp_path / "o.jsonl"), "--base-url", "http://x"], "pass --llm-model"),
        ([str(YC2_VAL), "--out", str(tmp_path / "o.jsonl"), "--base-url", "ftp://x", "--llm-model", "m"], "http://"),
        ([str(detection), "--out", str(tmp_path / "o.jsonl"),
          "--base-url", "http://127.0.0.1:9/v1", "--llm-model", "m", "--no-cache"], "expected captions"),
        ([str(tmp_path / "missing.json"), "--out", str(tmp_path / "o.jsonl")], "missing.json: file not found"),
    ]
    for args, message in cases:
        assert main(["make-search-queries", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0] and message in err[0], err
    with pytest.raises(SystemExit) as exit_:  # option values are checked by argparse, with the usage line
        main(["make-search-queries", str(YC2_VAL), "--out", str(tmp_path / "o.jsonl"), "--threshold", "2"])
    assert exit_.value.code == 2
    assert "argument --threshold: expected a number in [-1, 1], got '2'" in capsys.readouterr().err
