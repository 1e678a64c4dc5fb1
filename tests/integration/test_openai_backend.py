"""The openai backend against a real HTTP server on 127.0.0.1 (no network): request mapping,
a whole HumanEval+ run with a known score, retries, and one-line errors."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from openai_server import FakeOpenAIServer, Reply, Request, openai_error

from ra3bench.backends.base import GenerationParams
from ra3bench.backends.openai import GenerationError, OpenAIBackend, api_base, retry_after_s, server_stop
from ra3bench.errors import Ra3benchError, UsageError
from ra3bench.prompts import CLOSE_FENCE_STOP, EVALPLUS_RESPONSE_PREFIX, Prompt, PromptStyle, build_prompt
from ra3bench.suites import get_suite
from ra3bench.summary import Summary

LIMIT = 6
RIGHT = {0, 2, 3, 5}  # problem positions answered with the canonical solution; the others get a wrong program


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """httpx honours *_PROXY variables; the test servers are on 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def backend(url: str, **kwargs) -> OpenAIBackend:
    """A backend that retries fast: the tests' servers fail on purpose."""
    kwargs.setdefault("model", "test-model")
    kwargs.setdefault("api_key", "sk-test")
    return OpenAIBackend(url, backoff_s=0.001, max_backoff_s=0.01, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- request mapping -------------------------------------------------------------------------------

CHAT = Prompt(
    "T/0",
    PromptStyle.CHAT,
    messages=[{"role": "user", "content": "write f"}],
    response_prefix=EVALPLUS_RESPONSE_PREFIX,
    stop=[*CLOSE_FENCE_STOP, "<|im_end|>", "</s>", "\nif __name__", "\nprint(", "\ndef main("],
)
COMPLETION = Prompt("T/1", PromptStyle.COMPLETION, text="def f(x):\n", stop=["\nprint("])
PARAMS = GenerationParams(temperature=0.8, top_p=0.95, max_new_tokens=300, seed=7)


def test_chat_payload_continues_the_response_prefix():
    body = backend("http://127.0.0.1:1", params=PARAMS).payload(CHAT, n=3)
    assert body["model"] == "test-model"
    assert body["messages"] == [
        {"role": "user", "content": "write f"},
        {"role": "assistant", "content": EVALPLUS_RESPONSE_PREFIX},
    ]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["n"], body["seed"]) == (0.8, 0.95, 300, 3, 7)
    # four stop strings at most; code-structure strings before special-token strings
    assert body["stop"] == ["\n```", "\nif __name__", "\nprint(", "\ndef main("]
    assert "prompt" not in body
    plain = Prompt("T/2", PromptStyle.CHAT, messages=[{"role": "user", "content": "hi"}])
    body = backend("http://127.0.0.1:1").payload(plain, n=1)
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "continue_final_message" not in body and "stop" not in body


def test_completion_payload_sends_the_prompt_text():
    body = backend("http://127.0.0.1:1", params=PARAMS).payload(COMPLETION, n=1)
    assert body == {
        "model": "test-model",
        "prompt": "def f(x):\n",
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": 300,
        "n": 1,
        "seed": 7,
        "stop": ["\nprint("],
    }


def test_small_helpers():
    assert api_base("http://h:8000") == "http://h:8000/v1"
    assert api_base("http://h:8000/") == "http://h:8000/v1"
    assert api_base("https://h/openai/v1/") == "https://h/openai/v1"
    with pytest.raises(UsageError, match="--base-url"):
        api_base("localhost:8000")
    assert server_stop(["", "a", "a", "<|x|>", "b"], None) == ["a", "b", "<|x|>"]
    assert retry_after_s("2") == 2.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert OpenAIBackend("http://h:1", "m").prompt_style() is PromptStyle.CHAT
    described = OpenAIBackend("http://h:1", "m", api_key="sk-secret").describe()
    assert described["backend"] == "openai" and described["model"] == "m" and described["base_url"] == "http://h:1/v1"
    assert "sk-secret" not in str(described)


def test_the_wire_carries_the_payload_key_and_records_finish_and_tokens():
    prompts = [CHAT, COMPLETION]
    with FakeOpenAIServer(lambda body, i: "return 1\n```\nmore", api_key="sk-test") as server:
        out = backend(server.root, params=PARAMS).generate(prompts, 2)  # root URL: /v1 is added
    chat, completion = server.posts("/v1/chat/completions"), server.posts("/v1/completions")
    assert len(chat) == 1 and len(completion) == 1
    assert chat[0].body == backend(server.url, params=PARAMS).payload(CHAT, 2)
    assert completion[0].body == backend(server.url, params=PARAMS).payload(COMPLETION, 2)
    assert chat[0].headers["authorization"] == "Bearer sk-test"
    assert [c.text for c in out[0]] == ["return 1", "return 1"]  # the server cut at "\n```"
    assert [c.text for c in out[1]] == ["return 1\n```\nmore"] * 2
    assert {c.finish_reason for cs in out for c in cs} == {"stop"}
    assert [c.n_tokens for c in out[0]] == [0, 0]  # two choices: only a total is known


def test_a_server_that_ignores_n_is_asked_again_with_other_seeds():
    with FakeOpenAIServer(lambda body, i: f"seed {body['seed']}", honour_n=False) as server:
        out = backend(server.url, params=PARAMS).generate([COMPLETION], 3)
    assert [c.text for c in out[0]] == ["seed 7", "seed 8", "seed 9"]
    assert [r.body["n"] for r in server.posts()] == [3, 2, 1]
    assert [c.n_tokens for c in out[0]] == [2, 2, 2]  # one choice per response: exact


def test_a_server_that_rejects_the_prefix_fields_is_asked_without_them():
    def fault(request: Request) -> Reply | None:
        if "continue_final_message" in request.body:
            return openai_error(400, "Unrecognized request argument supplied: continue_final_message")
        return None

    with FakeOpenAIServer(lambda body, i: "x = 1\n```", fault=fault) as server:
        client = backend(server.url, concurrency=1)
        out = client.generate([CHAT, CHAT, CHAT], 1)
    assert [c.text for cs in out for c in cs] == ["x = 1"] * 3
    # one refusal, then every request goes without the fields (the prefix message stays)
    assert ["continue_final_message" in r.body for r in server.posts()] == [True, False, False, False]
    assert all(r.body["messages"][-1]["role"] == "assistant" for r in server.posts())


# -- a whole run through the pipeline ---------------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval():
    suite = get_suite("humaneval+")
    return suite, suite.problems()[:LIMIT]


def program_answer(problems, style: PromptStyle):
    """The server's model: the canonical solution for the RIGHT problems, a wrong one for the others."""
    by_key = {}
    for position, problem in enumerate(problems):
        if style is PromptStyle.CHAT:
            key = problem.instruction
            right = problem.reference + "\n```\n"
            wrong = f"def {problem.entry_point}(*args, **kwargs):\n    return None\n```\n"
        else:
            key = problem.prompt
            right = problem.reference[len(problem.prompt) :]
            wrong = "    return None\n"
        by_key[key] = right if position in RIGHT else wrong

    def answer(body: dict, index: int) -> str:
        key = body["messages"][0]["content"] if "messages" in body else body["prompt"]
        return by_key[key]

    return answer


def run_pipeline_with(client: OpenAIBackend, suite, problems, out: Path, n: int = 1) -> Summary:
    """What `ra3bench run` does after building the backend: a Session, on the local sandbox."""
    from ra3bench import EvalSpec, Session

    spec = EvalSpec(suite=suite.name, n=n, sandbox="local", workers=2, cache=False)
    with Session(spec, suite=suite, problems=problems) as session:
        return session.evaluate(client, out)


EXPECTED_PASS_AT_1 = len(RIGHT) / LIMIT


@pytest.mark.parametrize("style", [PromptStyle.CHAT, PromptStyle.COMPLETION])
def test_a_whole_run_scores_what_the_server_answered(humaneval, style, tmp_path):
    suite, problems = humaneval
    with FakeOpenAIServer(program_answer(problems, style), api_key="sk-test") as server:
        client = backend(server.url, prompt_style=style, concurrency=3)
        summary = run_pipeline_with(client, suite, problems, tmp_path / "run")
    assert summary.n_samples == LIMIT
    assert summary.pass_at_k["base"]["1"] == pytest.approx(EXPECTED_PASS_AT_1)
    assert summary.pass_at_k["plus"]["1"] == pytest.approx(EXPECTED_PASS_AT_1)
    endpoint = "/v1/chat/completions" if style is PromptStyle.CHAT else "/v1/completions"
    assert len(server.posts(endpoint)) == LIMIT and len(server.posts()) == LIMIT
    if style is PromptStyle.CHAT:
        assert all(r.body["messages"][-1]["content"] == EVALPLUS_RESPONSE_PREFIX for r in server.posts())


def test_server_errors_and_rate_limits_are_retried_and_the_score_is_the_same(humaneval, tmp_path):
    suite, problems = humaneval
    seen: dict[str, int] = {}
    answer = program_answer(problems, PromptStyle.CHAT)

    def fault(request: Request) -> Reply | None:
        key = request.body["messages"][0]["content"]
        seen[key] = seen.get(key, 0) + 1
        position = next(i for i, p in enumerate(problems) if p.instruction == key)
        if position % 3 == 0 and seen[key] <= 2:  # two 500s, then an answer
            return Reply(500, {"object": "error", "message": "engine hiccup"})
        if position % 3 == 1 and seen[key] == 1:  # one 429 that asks for a short wait
            return Reply(429, openai_error(429, "slow down").body, {"Retry-After": "0.2"})
        return None

    with FakeOpenAIServer(answer, fault=fault) as server:
        client = backend(server.url, concurrency=4)
        summary = run_pipeline_with(client, suite, problems, tmp_path / "run")
    assert summary.pass_at_k["plus"]["1"] == pytest.approx(EXPECTED_PASS_AT_1)
    tries = [seen[p.instruction] for p in problems]
    assert tries == [3 if i % 3 == 0 else 2 if i % 3 == 1 else 1 for i in range(LIMIT)]
    assert client.requests_sent == sum(tries) == len(server.posts())
    # Retry-After was honoured (the backoff alone is milliseconds)
    for position in (1, 4):
        key = problems[position].instruction
        first, second = [r.at for r in server.posts() if r.body["messages"][0]["content"] == key]
        assert second - first >= 0.2


# -- errors: one clear line -------------------------------------------------------------------------


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, Ra3benchError)
    return text


def test_an_unknown_model_names_it_and_the_served_models(humaneval):
    suite, problems = humaneval
    with FakeOpenAIServer(models=("Qwen/Qwen2.5-Coder-7B-Instruct", "other")) as server:
        client = backend(server.url, model="qwen-coder")
        with pytest.raises(UsageError) as exc:
            list(client.samples(suite, problems[:3], 1))
        posts = len(server.posts())
    text = one_line(exc)
    assert exc.value.exit_code == 2
    assert "'qwen-coder'" in text and "Qwen/Qwen2.5-Coder-7B-Instruct, other" in text and server.url in text
    assert posts <= 3  # a 404 is not retried


def test_a_model_complaint_in_a_400_is_a_model_error_too():
    def fault(request: Request) -> Reply:
        return openai_error(400, "Invalid model name passed in model=gpt-x")

    with FakeOpenAIServer(fault=fault, models=("served",)) as server, pytest.raises(UsageError) as exc:
        backend(server.url, model="gpt-x").generate([COMPLETION], 1)
    assert "'gpt-x' is not served" in one_line(exc) and "served" in str(exc.value)


def test_a_bad_api_key_is_one_line_and_not_retried():
    with FakeOpenAIServer(api_key="sk-right") as server:
        with pytest.raises(UsageError) as exc:
            backend(server.url, api_key="sk-wrong", concurrency=1).generate([COMPLETION, COMPLETION], 1)
        assert len(server.posts()) == 1
    text = one_line(exc)
    assert "401" in text and "check OPENAI_API_KEY / --api-key" in text and "sk-wrong" not in text


def test_the_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with FakeOpenAIServer(api_key="sk-env") as server:
        out = OpenAIBackend(server.url, "test-model").generate([COMPLETION], 1)
    assert out[0][0].text == "pass\n"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert OpenAIBackend(server.url, "test-model").api_key == "EMPTY"


def test_other_4xx_are_not_retried():
    def fault(request: Request) -> Reply:
        return openai_error(400, "max_tokens is too large: 300 > 128")

    with FakeOpenAIServer(fault=fault) as server:
        with pytest.raises(UsageError) as exc:
            backend(server.url, params=PARAMS).generate([COMPLETION], 1)
        assert len(server.posts()) == 1
    assert "400" in one_line(exc) and "max_tokens is too large" in str(exc.value) and "T/1" in str(exc.value)


def test_rate_limits_that_never_end_give_up_with_one_line():
    with FakeOpenAIServer(
        fault=lambda request: openai_error(429, "Rate limit reached", "rate_limit_exceeded")
    ) as server:
        with pytest.raises(GenerationError) as exc:
            backend(server.url, max_retries=3).generate([COMPLETION], 1)
        assert len(server.posts()) == 4
    assert "429" in one_line(exc) and "3 retries" in str(exc.value)


def test_a_server_that_keeps_failing_gives_up_with_its_message():
    with FakeOpenAIServer(fault=lambda request: Reply(503, {"error": "model is loading"})) as server:
        with pytest.raises(GenerationError) as exc:
            backend(server.url, max_retries=2).generate([COMPLETION], 1)
        assert len(server.posts()) == 3
    assert "503" in one_line(exc) and "model is loading" in str(exc.value)


def test_an_unreachable_server_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(GenerationError) as exc:
        backend(url, max_retries=2).generate([COMPLETION, CHAT], 1)
    text = one_line(exc)
    assert f"cannot reach the server at {url}" in text and "--base-url" in text


def test_a_server_that_does_not_answer_in_time_is_a_timeout():
    def fault(request: Request) -> Reply:
        time.sleep(0.5)
        return openai_error(500, "late")

    with FakeOpenAIServer(fault=fault) as server:
        with pytest.raises(GenerationError) as exc:
            backend(server.url, max_retries=1, timeout_s=0.1).generate([COMPLETION], 1)
        assert len(server.posts()) == 2
    assert "did not answer within 0.1s" in one_line(exc)


def test_generate_works_inside_a_running_event_loop():
    import asyncio

    async def main() -> str:
        with FakeOpenAIServer() as server:
            return backend(server.url).generate([COMPLETION], 1)[0][0].text

    assert asyncio.run(main()) == "pass\n"


def test_build_prompt_styles_reach_the_right_endpoints(humaneval):
    suite, problems = humaneval
    for style, endpoint in ((PromptStyle.CHAT, "/v1/chat/completions"), (PromptStyle.COMPLETION, "/v1/completions")):
        prompt = build_prompt(problems[0], suite.name, style)
        assert backend("http://h:1").endpoint(prompt) == endpoint.removeprefix("/v1")


# -- through the command line -----------------------------------------------------------------------


def test_the_command_line_runs_a_server_model(humaneval, tmp_path, capsys):
    import json

    from ra3bench.cli.main import main

    _, problems = humaneval
    with FakeOpenAIServer(program_answer(problems, PromptStyle.CHAT), api_key="sk-test") as server:
        argv = ["run", "--suite", "humaneval+", "--model", "test-model", "--base-url", server.url, "--api-key"]
        argv += ["sk-test", "--limit", str(LIMIT), "--sandbox", "local", "--workers", "2", "--out", str(tmp_path / "r")]
        assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["pass_at_k"]["plus"]["1"] == pytest.approx(EXPECTED_PASS_AT_1)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "openai" and manifest["model"]["model"] == "test-model"
    assert "sk-test" not in json.dumps(manifest)


def test_the_command_line_says_which_models_the_server_has(tmp_path, capsys):
    from ra3bench.cli.main import main

    with FakeOpenAIServer(models=("Qwen/Qwen2.5-Coder-7B-Instruct",)) as server:
        argv = ["run", "--suite", "humaneval+", "--model", "qwen", "--backend", "openai", "--base-url", server.url]
        code = main([*argv, "--limit", "2", "--sandbox", "local", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ra3bench: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "model 'qwen' is not served" in lines[0] and "Qwen/Qwen2.5-Coder-7B-Instruct" in lines[0]
    assert not (tmp_path / "r").exists()  # refused before the run folder is made
