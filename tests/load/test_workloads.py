"""Workloads of the latency scenario (``gateprobe.commands.load.workloads``): length distributions,
the prompts built to them, datasets, multi-turn sessions, the shared prefix, the endpoint mix;
and the reference's prefill cost and prefix cache that make TTFT depend on them."""

from __future__ import annotations

import io
import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from gateprobe.cli import main
from gateprobe.commands.load.datasets import load_dataset
from gateprobe.commands.load.plan import STREAM_ENDPOINTS
from gateprobe.commands.load.workloads import (
    MAX_PROMPT_TOKENS,
    UserStream,
    Workload,
    body_for,
    parse_duration,
    parse_length,
    prompt_text,
    slope_per_1k,
    workload_summary,
)
from gateprobe.core.console import Console
from gateprobe.core.errors import ConfigError, UsageError
from gateprobe.core.loadresult import LatencyResult
from gateprobe.core.tokenizer import count_tokens
from gateprobe.protocols.streams import StreamObserver, input_tokens_of
from gateprobe.reference import Timing
from gateprobe.reference.prefill import BLOCK_TOKENS, PrefixCache, prefill_ns
from gateway_fixtures import MakeGateway, client_for

MODELS = {"chat": "gpt-3.5-turbo", "messages": "claude-3-sonnet", "complete": "claude-2",
          "speech": "tts-1", "responses": "gpt-4o-mini", "legacy_chat": "claude-2-web"}
CHAT_ONLY = {"chat": 1.0}


# -- lengths ------------
def draws(spec: str, n: int = 4000, seed: int = 1) -> list[int]:
    length = parse_length(spec, "--prompt-tokens", MAX_PROMPT_TOKENS)
    rng = random.Random(seed)
    return [length.draw(rng) for _ in range(n)]


def test_fixed_is_always_its_value_in_either_spelling() -> None:
    assert set(draws("fixed:128", 50)) == {128}
    assert set(draws("77", 50)) == {77}


def test_uniform_covers_its_bounds_and_nothing_else() -> None:
    values = draws("uniform:min=10,max=20")
    assert min(values) == 10 and max(values) == 20
    assert set(values) == set(range(10, 21))


def test_normal_has_its_mean_and_spread_within_bounds() -> None:
    values = draws("normal:mean=500,sd=50,min=1,max=10000")
    assert abs(statistics.mean(values) - 500) < 5
    assert 45 < statistics.stdev(values) < 55


def test_lognormal_mean_is_in_tokens_and_bounds_hold() -> None:
    values = draws("lognormal:mean=200,sd=0.5", 20000)
    assert abs(statistics.mean(values) - 200) < 6  # mean in tokens, sd of the logarithm
    assert statistics.median(values) < 200  # right-skewed
    bounded = draws("lognormal:mean=200,sd=0.5,min=16,max=300")
    assert min(bounded) >= 16 and max(bounded) <= 300


def test_a_seed_replays_the_same_draws() -> None:
    assert draws("lognormal:mean=200,sd=1", 100, seed=7) == \
        draws("lognormal:mean=200,sd=1", 100, seed=7)
    assert draws("lognormal:mean=200,sd=1", 100, seed=7) != \
        draws("lognormal:mean=200,sd=1", 100, seed=8)


@pytest.mark.parametrize(("spec", "says"), [
    ("gaussian:mean=3,sd=1", "unknown distribution 'gaussian'"),
    ("lognormal:mean=200", "lognormal needs sd"),
    ("lognormal:mean=200,sd=0.5,mx=10", "has no 'mx' (did you mean 'max'?)"),
    ("normal:mean=abc,sd=1", "mean=abc is not a number"),
    ("uniform:min=20,max=10", "needs 1 <= min <= max"),
    ("fixed:0", "needs 1 <= min <= max"),
    ("fixed:1.5", "whole number of tokens"),
    ("normal:mean=-3,sd=1", "needs mean > 0"),
    ("lognormal:mean=100,sd=9", "at most 5"),
    ("uniform:min=1,max=nan", "must be finite"),
    ("uniform:min=1,max:3", "is not KEY=NUMBER"),
    (f"fixed:{MAX_PROMPT_TOKENS + 1}", "needs 1 <= min <= max"),
], ids=lambda v: v if ":" in v else None)
def test_a_bad_spec_is_one_line_naming_the_flag(spec: str, says: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_length(spec, "--prompt-tokens", MAX_PROMPT_TOKENS)
    assert says in str(raised.value)
    assert str(raised.value).startswith(f"--prompt-tokens {spec}")
    assert "\n" not in str(raised.value)


def test_a_bad_spec_on_the_command_line_is_exit_2_without_a_traceback(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "latency", "--output-tokens", "lognormal:mean=10", "--report-dir",
                 str(tmp_path)], Console(out, err))
    assert code == 2
    assert "--output-tokens lognormal:mean=10: lognormal needs sd" in err.getvalue()
    assert "Traceback" not in err.getvalue() + out.getvalue()


@pytest.mark.parametrize("tokens", [1, 2, 7, 64, 513, 4000])
def test_a_prompt_is_built_to_its_token_count(tokens: int) -> None:
    text = prompt_text(tokens, random.Random(tokens))
    assert count_tokens(text) == tokens


def test_durations() -> None:
    assert parse_duration("1s", "--think-time") == 1.0
    assert parse_duration("250ms", "--think-time") == 0.25
    assert parse_duration("2", "--think-time") == 2.0
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration("soon", "--think-time")


# -- request bodies ------------
def test_the_plain_bodies_are_what_the_latency_scenario_always_sent() -> None:
    one = [("user", "Hi")]
    assert body_for("chat", MODELS, one, 64) == {
        "model": "gpt-3.5-turbo", "stream": True, "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream_options": {"include_usage": True}}
    assert body_for("messages", MODELS, one, 64) == {
        "model": "claude-3-sonnet", "stream": True, "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}]}
    assert body_for("complete", MODELS, one, 64) == {
        "model": "claude-2", "stream": True, "max_tokens_to_sample": 64,
        "prompt": "\n\nHuman: Hi\n\nAssistant:"}
    assert body_for("responses", MODELS, one, 8) == {
        "model": "gpt-4o-mini", "stream": True, "input": "Hi", "max_output_tokens": 16}
    assert body_for("speech", MODELS, one, 64) == {
        "model": "tts-1", "input": "Hi", "voice": "alloy", "response_format": "mp3"}


def test_a_history_and_a_system_prompt_in_each_protocol() -> None:
    history = [("user", "a"), ("assistant", "b"), ("user", "c")]
    chat = body_for("chat", MODELS, history, 9, system="S")
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "user"]
    messages = body_for("messages", MODELS, history, 9, system="S")
    assert messages["system"] == "S" and len(messages["messages"]) == 3
    complete = body_for("complete", MODELS, history, 9, system="S")
    assert complete["prompt"] == "S\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:"
    responses = body_for("responses", MODELS, history, 9, system="S")
    assert responses["instructions"] == "S" and len(responses["input"]) == 3


# -- datasets ------------
def write(tmp_path: Path, *lines: Any, raw: str | None = None) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text(raw if raw is not None else
                    "\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_a_dataset_of_prompts_messages_and_sharegpt(tmp_path: Path) -> None:
    path = write(tmp_path, {"prompt": "Tell me a story", "output_tokens": 40},
                 {"messages": [{"role": "system", "content": "Be brief"},
                               {"role": "user", "content": "hi"},
                               {"role": "assistant", "content": "hello"},
                               {"role": "user", "content": "and?"}]},
                 {"conversations": [{"from": "human", "value": "one"},
                                    {"from": "gpt", "value": "first answer here"},
                                    {"from": "human", "value": "two"}]})
    prompt, messages, sharegpt = load_dataset(path)
    assert prompt.turns == (("Tell me a story", 40),)
    assert messages.system == "Be brief"
    assert messages.context == (("user", "hi"), ("assistant", "hello"))
    assert messages.turns == (("and?", None),)
    assert sharegpt.turns == (("one", 3), ("two", None))  # the gpt answer's length, expected


def test_a_sharegpt_json_array_is_read_too(tmp_path: Path) -> None:
    path = write(tmp_path, raw=json.dumps([{"id": "x", "conversations": [
        {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]))
    assert load_dataset(path)[0].turns == (("q", 1),)


@pytest.mark.parametrize(("lines", "says"), [
    (['{"prompt": "ok"}', "{not json"], "line 2: not JSON"),
    (['{"prompt": "ok"}', '{"text": "x"}'], "line 2: expected exactly one of prompt, messages"),
    (['{"prompt": ""}'], "line 1: prompt is empty"),
    (['{"prompt": "x", "output_tokens": -1}'], "line 1: output_tokens must be a whole number"),
    (['{"messages": [{"role": "assistant", "content": "x"}]}'], "line 1: messages[0]: "
     "assistant after nothing"),
    (['{"messages": [{"role": "user", "content": 3}]}'], "messages[0].content is not text"),
    (['', '{"conversations": [{"from": "gpt", "value": "x"}]}'], "line 2: no human turn"),
    (['{"conversations": [{"from": "robot", "value": "x"}]}'], "unknown speaker 'robot'"),
    ([], "no records"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_dataset_is_one_line_naming_the_line(tmp_path: Path, lines: list[str],
                                                  says: str) -> None:
    path = write(tmp_path, raw="\n".join(lines))
    with pytest.raises(ConfigError) as raised:
        load_dataset(path)
    assert says in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).startswith(f"--dataset {path}")


def test_a_bad_dataset_on_the_command_line_is_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, raw='{"prompt": "x"}\n[1, 2]\n')
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "latency", "--dataset", str(path), "--report-dir",
                 str(tmp_path / "r")], Console(out, err))
    assert code == 2, out.getvalue() + err.getvalue()
    assert "line 2: expected a JSON object" in err.getvalue()
    assert "Traceback" not in err.getvalue()


# -- users and sessions ------------
def stream(workload: Workload, user: int = 0, weights: dict[str, float] | None = None,
           dataset: Any = None) -> UserStream:
    return UserStream(workload, MODELS, "Write a short paragraph.", 64,
                      weights or CHAT_ONLY, user, dataset)


def test_without_a_workload_every_request_is_the_plans_one() -> None:
    user = stream(Workload())
    first, second = user.next(), user.next()
    assert first is second and first.body == body_for("chat", MODELS,
                                                     [("user", "Write a short paragraph.")], 64)
    assert first.meta["output_tokens_asked"] == 64
    assert first.meta["prompt_tokens"] == count_tokens("Write a short paragraph.")


def test_drawn_lengths_reach_the_body_and_the_sample() -> None:
    user = stream(Workload(prompt_tokens="uniform:min=5,max=50", output_tokens="fixed:33",
                           seed=3))
    for _ in range(20):
        request = user.next()
        asked = request.meta["prompt_tokens_asked"]
        assert 5 <= asked <= 50
        assert count_tokens(request.body["messages"][-1]["content"]) == asked
        assert request.body["max_tokens"] == request.meta["output_tokens_asked"] == 33
        user.answered(request, "fine", True)


def test_users_differ_and_a_seed_replays_them() -> None:
    work = Workload(prompt_tokens="fixed:20", seed=5)
    a, b, again = stream(work, 1), stream(work, 2), stream(work, 1)
    texts = [a.next().text for _ in range(3)]
    assert texts == [again.next().text for _ in range(3)]
    assert texts[0] != b.next().text


def test_a_conversation_sends_its_growing_history_with_the_actual_answers() -> None:
    user = stream(Workload(prompt_tokens="fixed:10", turns=3, think_time_s=1.5))
    first = user.next()
    assert first.meta["turn"] == 1 and user.think_s == 0
    user.answered(first, "answer one", True)
    assert user.think_s == 1.5
    second = user.next()
    assert second.meta["turn"] == 2
    assert [m["content"] for m in second.body["messages"]][:2] == [first.text, "answer one"]
    assert second.meta["prompt_tokens"] > first.meta["prompt_tokens"]
    user.answered(second, "answer two", True)
    third = user.next()
    user.answered(third, "answer three", True)
    assert user.think_s == 0  # the conversation is over: the next one starts at once
    fourth = user.next()
    assert fourth.meta["turn"] == 1 and len(fourth.body["messages"]) == 1
    assert fourth.meta["session"] != first.meta["session"]


def test_a_failed_answer_ends_the_conversation() -> None:
    user = stream(Workload(prompt_tokens="fixed:10", turns=5))
    first = user.next()
    user.answered(first, "", False)
    assert user.next().meta["turn"] == 1


def test_a_dataset_conversation_plays_its_own_turns(tmp_path: Path) -> None:
    path = write(tmp_path, {"conversations": [
        {"from": "system", "value": "You are terse."},
        {"from": "human", "value": "q1"}, {"from": "gpt", "value": "a b c d"},
        {"from": "human", "value": "q2"}]})
    user = stream(Workload(dataset=str(path)), dataset=load_dataset(path))
    first = user.next()
    assert first.body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert first.meta["output_tokens_asked"] == first.meta["output_tokens_expected"] == 4
    user.answered(first, "our own answer", True)
    second = user.next()
    assert second.meta["turn"] == 2
    assert second.body["messages"][2] == {"role": "assistant", "content": "our own answer"}


def test_a_shared_prefix_is_one_system_prompt_with_distinct_suffixes() -> None:
    work = Workload(shared_prefix_tokens=(300,), seed=2)
    a, b = stream(work, 1, {"messages": 1.0}), stream(work, 2, {"messages": 1.0})
    ra, rb = a.next(), b.next()
    assert ra.body["system"] == rb.body["system"]
    assert count_tokens(ra.body["system"]) == 300 and ra.meta["prefix_tokens"] == 300
    assert ra.text != rb.text


def test_several_prefix_lengths_take_turns_across_users() -> None:
    work = Workload(shared_prefix_tokens=(0, 500), seed=2)
    seen = {stream(work, u).next().meta["prefix_tokens"] for u in range(4)}
    assert seen == {0, 500}


def test_the_mix_draws_kinds_by_weight() -> None:
    user = stream(Workload(prompt_tokens="fixed:5"), weights={"chat": 3, "messages": 1,
                                                              "speech": 0})
    kinds = [user.next().kind for _ in range(2000)]
    assert "speech" not in kinds
    assert 2.5 < kinds.count("chat") / kinds.count("messages") < 3.6


def test_the_mix_flag_is_whole(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "latency", "--mix", "chat=3,messages=1", "--dry-run"],
                Console(out, err))
    assert code == 0, err.getvalue()
    assert "chat      75%" in out.getvalue() and "messages  25%" in out.getvalue()
    assert "complete" not in out.getvalue()
    code = main(["load", "latency", "--mix", "chat=x"], Console(io.StringIO(), err))
    assert code == 2 and "not a number" in err.getvalue()


def test_multi_turn_needs_closed_loop_users() -> None:
    err = io.StringIO()
    code = main(["load", "latency", "--turns", "3", "--arrival", "poisson", "--rate", "2"],
                Console(io.StringIO(), err))
    assert code == 2 and "need closed-loop users" in err.getvalue()


# -- summaries ------------
def test_slope_per_1k() -> None:
    assert slope_per_1k([(0, 10), (1000, 60), (2000, 110)]) == pytest.approx(50)
    assert slope_per_1k([(5, 1), (5, 2)]) is None


def test_the_summary_groups_ttft_by_turn_and_prefix_and_is_typed() -> None:
    samples = [{"ok": True, "turn": t, "prefix_tokens": p, "ttft_ms": 10 + t * 5 + p / 100,
                "prompt_tokens": 100 * t + p, "output_tokens_asked": 64, "output_tokens": 30,
                "session": f"u{t}"} for t in (1, 2, 3) for p in (0, 1000)]
    summary = workload_summary(samples)
    assert list(summary["by_turn"]) == ["1", "2", "3"]
    assert summary["by_prefix_tokens"]["1000"]["ttft_ms"]["p50"] > \
        summary["by_prefix_tokens"]["0"]["ttft_ms"]["p50"]
    assert summary["ttft_ms_per_1k_prefix_tokens"] == pytest.approx(10)
    assert summary["output_shorter_than_asked"] == 1.0
    result = LatencyResult.of({"scenario": "latency", "latency": {}, "workload": summary})
    assert result.workload is not None
    assert result.workload.by_turn["3"].ttft_ms.p50 == pytest.approx(25 + 5)


def test_the_prompt_tokens_a_usage_block_reports() -> None:
    assert input_tokens_of('{"usage": {"prompt_tokens": 12, "completion_tokens": 3}}') == 12
    assert input_tokens_of({"type": "message_start",
                            "message": {"usage": {"input_tokens": 9}}}) == 9
    assert input_tokens_of({"response": {"usage": {"input_tokens": 4}}}) == 4
    assert input_tokens_of('{"usage": null}') is None


# -- the reference's prefill ------------
def test_prefill_costs_per_token_and_nothing_by_default() -> None:
    prompt = prompt_text(1000, random.Random(0))
    assert prefill_ns(prompt, 0.0, None) == 0
    assert prefill_ns(prompt, 50.0, None) == 1000 * 50_000


def test_the_prefix_cache_charges_only_what_it_has_not_seen() -> None:
    cache = PrefixCache()
    prefix = prompt_text(BLOCK_TOKENS * 40, random.Random(1))
    first = prefill_ns(prefix + " alpha beta", 10.0, cache)
    again = prefill_ns(prefix + " gamma delta", 10.0, cache)
    assert first == (BLOCK_TOKENS * 40 + 2) * 10_000
    assert again == 2 * 10_000  # the 40 blocks of the prefix are cached
    moved = "other words " + prefix  # a prefix is cached, not a substring
    assert prefill_ns(moved, 10.0, cache) == prefill_ns(moved, 10.0, None)


def test_the_prefix_cache_is_bounded() -> None:
    cache = PrefixCache(capacity=4)
    cache.lookup_and_add(["x "] * BLOCK_TOKENS * 10)
    assert len(cache._blocks) == 4


# -- end to end ------------
@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_TEST_KEY", "gp-vip-0001")


def load(base_url: str, report: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    slo = report / "slo.yaml"
    slo.parent.mkdir(parents=True, exist_ok=True)
    slo.write_text("ttft_p95_ms: 10000\nerror_rate_max: 0\n")
    out, err = io.StringIO(), io.StringIO()
    code = main(["load", "latency", "--base-url", base_url, "--api-key-env", "GP_TEST_KEY",
                 "--slo", str(slo), "--report-dir", str(report), "--processes", "1",
                 "--lag-bound-ms", "1000", *extra], Console(out, err))
    verdict = json.loads((report / "verdict.json").read_text()) \
        if (report / "verdict.json").exists() else {}
    return code, out.getvalue() + err.getvalue(), verdict


def samples_of(report: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (report / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.usefixtures("key")
def test_every_sample_carries_asked_and_received_tokens(make_gateway: MakeGateway,
                                                        tmp_path: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1))
    code, out, verdict = load(gateway.base_url, tmp_path, "--duration", "3", "--users", "2",
                              "--mix", "chat=1,messages=1,complete=1",
                              "--prompt-tokens", "uniform:min=20,max=200",
                              "--output-tokens", "uniform:min=4,max=40",
                              "--max-requests", "60")
    assert code == 0, out
    samples = samples_of(tmp_path)
    assert samples and {s["endpoint"] for s in samples} == {
        "/v1/chat/completions", "/v1/messages", "/v1/complete"}
    for s in samples:
        assert 20 <= s["prompt_tokens_asked"] <= 200
        assert s["prompt_tokens"] >= s["prompt_tokens_asked"]
        assert 4 <= s["output_tokens_asked"] <= 40
        assert 1 <= s["output_tokens"] <= s["output_tokens_asked"]  # max_tokens is a cap
        if s["endpoint"] != "/v1/complete":  # the legacy stream reports no usage
            assert s["prompt_tokens_usage"] >= s["prompt_tokens_asked"]
    assert verdict["workload"]["tokens"]["prompt_tokens_asked"]["count"] == len(samples)
    assert "output asked" in out


def turn_ttft(verdict: dict[str, Any], turn: str) -> float:
    value: float = verdict["workload"]["by_turn"][turn]["ttft_ms"]["p50"]
    return value


@pytest.mark.slow
@pytest.mark.usefixtures("key")
@pytest.mark.parametrize("charged", [True, False], ids=["prefill", "no-prefill"])
def test_multi_turn_ttft_grows_with_history_on_a_reference_that_charges_it(
        make_gateway: MakeGateway, tmp_path: Path, charged: bool) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1,
                                         prefill_us_per_token=100 if charged else 0))
    code, out, verdict = load(gateway.base_url, tmp_path, "--duration", "4", "--users", "2",
                              "--weight", "messages=0", "--weight", "complete=0",
                              "--prompt-tokens", "fixed:300", "--output-tokens", "fixed:40",
                              "--turns", "4", "--think-time", "10ms", "--max-requests", "40")
    assert code == 0, out
    by_turn = verdict["workload"]["by_turn"]
    assert set(by_turn) >= {"1", "2", "3", "4"}
    # Each turn adds about 300 + ~40 prompt tokens, 100 us each: ~34 ms per turn when charged.
    growth = turn_ttft(verdict, "4") - turn_ttft(verdict, "1")
    slope = verdict["workload"]["ttft_ms_per_1k_prompt_tokens"]
    if charged:
        assert growth > 60 and slope > 50
        assert "turn" in out  # the console shows TTFT by turn, and so does the report
        page = (tmp_path / "report.html").read_text()
        assert "<h3>Workload</h3>" in page and "data-label=\"turn\">4<" in page
    else:
        assert growth < 30 and slope < 30


@pytest.mark.slow
@pytest.mark.usefixtures("key")
@pytest.mark.parametrize("cache", [True, False], ids=["prefix-cache", "no-cache"])
def test_a_shared_prefix_shows_the_prefix_cache_speed_up(make_gateway: MakeGateway,
                                                         tmp_path: Path, cache: bool) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1, prefill_us_per_token=100,
                                         prefix_cache=cache))
    code, out, verdict = load(gateway.base_url, tmp_path, "--duration", "4", "--users", "2",
                              "--weight", "messages=0", "--weight", "complete=0",
                              "--shared-prefix-tokens", "0,2000", "--output-tokens", "fixed:8",
                              "--max-requests", "40")
    assert code == 0, out
    by_prefix = verdict["workload"]["by_prefix_tokens"]
    extra = by_prefix["2000"]["ttft_ms"]["p50"] - by_prefix["0"]["ttft_ms"]["p50"]
    # 2000 prefix tokens at 100 us: 200 ms uncached; cached after its first request.
    if cache:
        assert extra < 50, by_prefix
    else:
        assert extra > 150, by_prefix


@pytest.mark.slow
@pytest.mark.usefixtures("key")
def test_a_sharegpt_dataset_runs_as_multi_turn_over_two_processes(make_gateway: MakeGateway,
                                                                  tmp_path: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1))
    path = write(tmp_path, *({"conversations": [
        {"from": "human", "value": f"question {i} about rivers"},
        {"from": "gpt", "value": "a fairly short recorded answer of some words"},
        {"from": "human", "value": "and the next question"},
        {"from": "gpt", "value": "ok"},
        {"from": "human", "value": "a last one"}]} for i in range(5)))
    code, out, verdict = load(gateway.base_url, tmp_path / "run", "--duration", "6",
                              "--users", "2", "--processes", "2", "--dataset", str(path),
                              "--mix", "messages=1", "--max-requests", "60")
    assert code == 0, out
    samples = samples_of(tmp_path / "run")
    assert {s["turn"] for s in samples} == {1, 2, 3}
    assert len({s["pid"] for s in samples}) == 2
    by_session: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_session.setdefault(s["session"], []).append(s)
    assert len({session.split(".")[0] for session in by_session}) == 2  # a user per process
    firsts = [s for s in samples if s["turn"] == 1]
    assert all(s["output_tokens_expected"] == s["output_tokens_asked"] == 8 for s in firsts)
    for turns in by_session.values():
        turns.sort(key=lambda s: s["turn"])
        sizes = [s["prompt_tokens_usage"] for s in turns]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)  # the history grows
    assert verdict["workload"]["sessions"] == len(by_session)


@pytest.mark.parametrize("cache", [True, False], ids=["prefix-cache", "no-cache"])
def test_the_reference_schedules_prefill_and_skips_a_cached_prefix(make_gateway: MakeGateway,
                                                                   cache: bool) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1, prefill_us_per_token=100,
                                         prefix_cache=cache))
    system = prompt_text(1600, random.Random(3))

    def first_token_due_ms(question: str) -> float:
        with client_for(gateway) as client:
            answer = client.post("/v1/chat/completions", json={
                "model": "gpt-3.5-turbo", "max_tokens": 4, "stream": True,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": question}]})
            trace = client.get(f"/_gateprobe/traces/{answer.headers['x-request-id']}").json()
        content = [e for e in trace["events"] if e["content"]]
        return float((content[0]["scheduled_ns"] - trace["t0_ns"]) / 1e6)

    cold, warm = first_token_due_ms("first question"), first_token_due_ms("another one")
    assert cold > 5 + 160  # 1,600 system tokens at 100 us each, and then some
    if cache:
        assert warm < 5 + 10  # only the few tokens after the cached blocks
    else:
        assert warm > 5 + 160


@pytest.mark.parametrize("kind", ["chat", "messages", "complete", "responses"])
def test_a_conversation_body_is_one_the_reference_accepts(gateway: Any, kind: str) -> None:
    path = STREAM_ENDPOINTS[kind]
    body = body_for(kind, MODELS, [("user", "a"), ("assistant", "b"), ("user", "c")], 16,
                    system="Be brief.")
    observer = StreamObserver(path, body, 0, keep_text=True)
    headers = {"anthropic-version": "2023-06-01"} if kind in ("messages", "complete") else {}
    with client_for(gateway, **headers) as client, \
            client.stream("POST", path, json=body) as answer:
        assert answer.status_code == 200, answer.read()
        for chunk in answer.iter_bytes():
            observer.feed(chunk, 1)
    observer.finish(2)
    assert observer.findings == [] and observer.text
    if kind != "complete":  # the legacy stream reports no usage
        assert observer.input_tokens is not None and observer.input_tokens > 3


@pytest.mark.slow
@pytest.mark.usefixtures("key")
def test_a_seed_replays_a_run(make_gateway: MakeGateway, tmp_path: Path) -> None:
    gateway = make_gateway(timing=Timing(ttft_ms=5, itl_ms=1))

    def drawn(run: str) -> dict[tuple[str, int], tuple[int, int]]:
        code, out, _ = load(gateway.base_url, tmp_path / run, "--duration", "4", "--users", "2",
                            "--prompt-tokens", "lognormal:mean=100,sd=0.8,max=1000",
                            "--output-tokens", "uniform:min=4,max=64", "--turns", "2",
                            "--workload-seed", "42", "--max-requests", "16")
        assert code == 0, out
        return {(s["session"], s["turn"]): (s["prompt_tokens_asked"], s["output_tokens_asked"])
                for s in samples_of(tmp_path / run)}

    first, second = drawn("one"), drawn("two")
    shared = first.keys() & second.keys()
    assert len(shared) >= 8
    assert {k: first[k] for k in shared} == {k: second[k] for k in shared}
