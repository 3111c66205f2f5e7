import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hookbench.base.errors import ConfigError, DataError
from hookbench.evaluation import scorers as sc
from hookbench.evaluation.datasets import gsm8k
from hookbench.evaluation.parts import build
from hookbench.testing.config import option_cfg
from hookbench.testing.repo import GSM8K

REPO = Path(__file__).parents[1]


# --- strip_think -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>12</think> 13", "13"),
        ("<think>a</think>x<THINK>b</THINK>y", "xy"),
        ("reasoning only</think>\n42", "42"),  # template opened the block in the prompt
        ("<think>ran out of tokens, the answer is 7", ""),  # unclosed: no answer given
        ("plain 5", "plain 5"),
    ],
)
def test_strip_think(text, expected):
    assert sc.strip_think(text) == expected


# --- exact / normalized ----------------------------------------------------------------------


def test_exact():
    s = sc.ExactScorer()
    assert s.name == "exact"
    assert s.score("  Paris \n", "Paris") == sc.Score(True, "Paris")
    assert s.score("paris", "Paris").correct is False
    assert s.score("<think>Lyon?</think>Paris", "Paris").correct is True


def test_normalized():
    s = sc.NormalizedScorer()
    assert s.name == "normalized"
    assert s.score("  NEW   york!! ", "New York").correct is True
    assert s.score("“New York.”", "new york").correct is True  # unicode quotes
    assert s.score("New York — city…", "new york city").correct is True
    assert s.score("New Jersey", "New York").correct is False
    assert s.score("<think>no</think>Yes.", "yes").correct is True


def test_contains_takes_the_gold_as_whole_words_of_a_sentence():
    s = sc.ContainsScorer()
    assert s.score("The capital of France is Paris.", "Paris").correct is True
    assert s.score("The capital of the United States is Washington, D.C.", "Washington, D.C.").correct is True
    assert s.score("Parisian cafés are famous.", "Paris").correct is False  # whole words only
    assert s.score("The capital of Switzerland is Lier.", "Bern").correct is False


# --- numeric -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, gold",
    [
        ("$1,234.00", "1234"),
        ("50%", "50"),
        ("\\boxed{42}", "42"),
        ("so the total is $\\boxed{1,000}$ dollars", "1000"),
        ("#### 7", "7"),
        ("The answer is 18.", "18"),
        ("Answer: 18", "18"),
        ("The final answer is: **-3**", "-3"),
        ("<think>12</think> 13", "13"),
        ("She pays 2.50 per day", "2.5"),
        ("It is −4 degrees", "-4"),
        ("We get 0.5", ".5"),
        ("18.", "18.0"),
        ("Total: 3 + 4 = 7", "7"),
    ],
)
def test_numeric_formats(output, gold):
    score = sc.NumericScorer().score(output, gold)
    assert score.correct is True, (output, gold, score)


def test_numeric_uses_final_answer_not_any_number():
    s = sc.NumericScorer()
    # the gold appears earlier, but the final answer differs: wrong
    assert s.score("First I thought 18, but the answer is 20.", "18") == sc.Score(False, "20")
    assert s.score("18 eggs minus 2 gives 16", "18").correct is False
    assert s.score("The answer is 18. Check: 18 - 3 = 15", "18").correct is True  # explicit answer wins
    assert s.score("#### 5\nThe answer is 6", "5").correct is True  # #### has top priority
    assert s.score("\\boxed{9} and 10 more", "9").correct is True
    assert s.score("It ranges 3-4", "-4").correct is False  # a hyphen in a range is not a sign


def test_numeric_no_number_and_bad_gold():
    s = sc.NumericScorer()
    assert s.score("I don't know", "3") == sc.Score(False, None)
    assert s.score("<think>the answer is 3", "3") == sc.Score(False, None)
    with pytest.raises(DataError, match="has no number"):
        s.score("3", "three")


@pytest.mark.skipif(not GSM8K.is_file(), reason=f"GSM8K copy not found at {GSM8K}")
def test_numeric_on_real_gsm8k_answers():
    """Every reference solution scores correct against the loader's gold; altering its final number fails it."""
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    items = gsm8k(path=str(GSM8K)).items
    assert len(rows) == len(items) == 1319
    s = sc.NumericScorer()
    scores = s.score_many([(r["answer"], i.gold) for r, i in zip(rows, items)])
    bad = [(i.id, sc_.extracted, i.gold) for i, sc_ in zip(items, scores) if not sc_.correct]
    assert not bad
    for row, item in zip(rows, items):
        head, _, tail = row["answer"].rpartition("####")
        altered = f"{head}#### {int(sc.extract_number(tail)) + 1}"
        assert s.score(altered, item.gold).correct is False, item.id


# --- judge ---------------------------------------------------------------------------------------


STOCK_CONFIGS = {"benchmark": {"name": "benchmark", "temperature": 0.3, "do_sample": True},
                 "precise": {"name": "precise", "temperature": 0.1, "do_sample": True}}


class FakeServer:
    """A tiny real HTTP server on 127.0.0.1 that answers POSTs with whatever `reply(path, body)` returns,
    and GET /api/health and /api/configs as a stock hook server does (hook-api.md: no extensions, every
    preset samples), so a judge can speak the contract to it."""

    def __init__(self, reply):
        self.requests: list[tuple[str, dict, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body, dict(self.headers)))
                status, payload = reply(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                outer.requests.append((self.path, None, dict(self.headers)))
                payload = {"status": "online", "device": "cpu", "hooks_active": False} \
                    if self.path == "/api/health" else STOCK_CONFIGS
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def start(reply):
        servers.append(FakeServer(reply))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


PROMPT = "Q: {question}\nGold: {gold}\nAnswer: {answer}\nReply CORRECT or INCORRECT."


def chat(content):
    return lambda path, body: (200, {"choices": [{"message": {"role": "assistant", "content": content}}]})


@pytest.mark.parametrize(
    "content, correct, extracted",
    [
        ("CORRECT", True, "CORRECT"),
        ("incorrect.", False, "INCORRECT"),
        ("<think>is it CORRECT? no</think>Verdict: INCORRECT", False, "INCORRECT"),
        ("Correct - the answer matches. (Not INCORRECT.)", True, "CORRECT"),
    ],
)
def test_judge_openai(server, monkeypatch, content, correct, extracted):
    srv = server(chat(content))
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    judge = sc.JudgeScorer(
        prompt=PROMPT, backend="openai", base_url=srv.url + "/v1", model="m", api_key_env="JUDGE_KEY", timeout_s=5
    )
    score = judge.score("<think>hmm</think>Paris", "Paris", question="Capital of France?")
    assert score == sc.Score(correct, extracted)
    path, body, headers = srv.requests[0]
    assert path == "/v1/chat/completions"
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": PROMPT.format(question="Capital of France?", gold="Paris", answer="Paris")}],
        "temperature": 0,
    }
    assert headers["Authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(
    "reply",
    [
        chat("I am not sure"),
        chat(None),
        lambda path, body: (500, {"error": "boom"}),
        lambda path, body: (200, {"unexpected": True}),
    ],
)
def test_judge_openai_failures_are_judge_errors(server, reply):
    srv = server(reply)
    judge = sc.JudgeScorer(prompt=PROMPT, backend="openai", base_url=srv.url, model="m", timeout_s=5)
    score = judge.score("Paris", "Paris")
    assert score.correct is None and score.extracted is None and score.error == "judge_error"
    assert score.detail


def test_judge_unreachable_is_judge_error(server):
    srv = server(chat("CORRECT"))
    srv.close()
    judge = sc.JudgeScorer(prompt=PROMPT, backend="openai", base_url=srv.url, model="m", timeout_s=2)
    assert judge.score("x", "y").error == "judge_error"


def hook_reply(original):
    return lambda path, body: (200, {"original": original, "modified": None, "hook_count": 0})


def posts(srv):
    return [(path, body, headers) for path, body, headers in srv.requests if body is not None]


def test_judge_hook_backend(server):
    srv = server(hook_reply("INCORRECT"))
    judge = sc.JudgeScorer(prompt=PROMPT, backend="hook", base_url=srv.url, preset="benchmark", timeout_s=5)
    assert judge.score("5", "7", question="2+3?") == sc.Score(False, "INCORRECT")
    path, body, _ = posts(srv)[0]
    assert path == "/api/generate"
    assert body == {"query": PROMPT.format(question="2+3?", gold="7", answer="5"), "config": "benchmark", "use_hooks": False}


def test_judge_on_the_evaluated_server_uses_the_job_s_client_and_token(server):
    """A judge on a token-protected evaluated server sends the token, and grades with its most
    deterministic preset (a stock server has no greedy one: the lowest temperature)."""
    from hookbench.hookapi.client import HookClient

    srv = server(hook_reply("CORRECT"))
    judge = sc.JudgeScorer(prompt=PROMPT, backend="hook", timeout_s=5)
    judge.bind_client(HookClient(srv.url, token="s3cret"))
    assert [s.correct for s in judge.score_many([("5", "5"), ("6", "6", "q")])] == [True, True]
    assert all(h.get("Authorization") == "Bearer s3cret" for _, _, h in srv.requests)
    assert {b["config"] for _, b, _ in posts(srv)} == {"precise"}
    assert judge.context()["base_url"] == srv.url and judge.context()["preset"] == "precise"


@pytest.mark.parametrize(
    "reply",
    [
        hook_reply("Generation error: CUDA out of memory (answer CORRECT)"),
        hook_reply("Model not loaded"),
        hook_reply(""),
        lambda path, body: (422, {"detail": [{"loc": ["body", "query"], "msg": "field required"}]}),
    ],
)
def test_judge_hook_errors_are_judge_errors_not_wrong(server, reply):
    srv = server(reply)
    judge = sc.JudgeScorer(prompt=PROMPT, backend="hook", base_url=srv.url, timeout_s=5)
    assert judge.score("5", "5").error == "judge_error"
    assert [s.error for s in judge.score_many([("5", "5"), ("6", "5", "q")])] == ["judge_error"] * 2


def test_judge_config_errors(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ConfigError, match="scorer.backend"):
        sc.JudgeScorer(prompt=PROMPT, backend="grpc")
    with pytest.raises(ConfigError, match="scorer.model"):
        sc.JudgeScorer(prompt=PROMPT, backend="openai")
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_VAR"):
        sc.JudgeScorer(prompt=PROMPT, api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(ConfigError, match="reference"):
        sc.JudgeScorer(prompt="{reference} {answer}")


# --- configs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, cls",
    [
        ("exact", sc.ExactScorer),
        ("normalized", sc.NormalizedScorer),
        ("contains", sc.ContainsScorer),
        ("numeric", sc.NumericScorer),
        ("judge", sc.JudgeScorer),
        ("auto", sc.AutoScorer),
    ],
)
def test_yaml_instantiates(name, cls):
    scorer = build(option_cfg("scorer", f"{name}"), "scorer")
    assert type(scorer) is cls and scorer.name == name


def test_judge_yaml_prompt_and_openai_override(server, monkeypatch):
    srv = server(chat("CORRECT"))
    cfg = option_cfg("scorer", "judge")
    assert all("{" + f + "}" in cfg.prompt for f in ("question", "answer", "gold"))
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    cfg.merge_with({"backend": "openai", "base_url": srv.url, "model": "m", "api_key_env": "OPENAI_API_KEY"})
    assert build(cfg, "scorer").score("4", "4", question="2+2?").correct is True
    assert "2+2?" in srv.requests[0][1]["messages"][0]["content"]
    cfg.model = None
    with pytest.raises(ConfigError, match="scorer.model"):
        build(cfg, "scorer")


# --- auto (mixed numeric and text golds) --------------------------------------------------------


@pytest.mark.parametrize("output, gold, correct, kind", [
    (" 53 + 94 = 147", "147", True, "numeric"),   # normalized equality would call this wrong
    ("The answer is 146.", "147", False, "numeric"),
    ("It costs $1,200.", "$1,200", True, "numeric"),
    ("paris!", "Paris", True, "text"),
    ("not Paris", "Paris", False, "text"),        # equality, not containment
    ("The sky is blue", "The sky is blue.", True, "text"),
    ("147", " 53 + 94 = 147", False, "text"),     # a gold with words around its number is text
])
def test_auto_scores_numeric_golds_by_number_and_text_golds_by_normalized_equality(output, gold, correct, kind):
    s = sc.AutoScorer().score(output, gold)
    assert (s.correct, s.kind) == (correct, kind)
