"""The gRPC runtime against the real vLLM engine on the embedded model."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2

from clients.client import AsyncClient, Client, RlvrError, collect
from rlvr.v1 import reasoning_pb2 as pb
from tests.conftest import API_TOKEN, TRAIN_TOKEN, metric_value

pytestmark = pytest.mark.engine

PROMPTS = ["What is 4821+377?", "What is 905-4473?", "What is 318*7?",
           "Which is bigger, 9.11 or 9.9?", "Solve 7*x+12=61 for x.", "What is 55555+55555?"]


def check_stream(events: list[pb.GenerateEvent], n: int = 1) -> None:
    """Well-formed: channels in order, exactly one final event per choice, usage == deltas."""
    counts = {i: {pb.CHANNEL_THINKING: 0, pb.CHANNEL_ANSWER: 0} for i in range(n)}
    ended, finished = set(), {}
    for event in events:
        kind = event.WhichOneof("event")
        index = getattr(event, kind).index
        assert index not in finished, "event after the final event of its choice"
        if kind == "delta":
            if event.delta.channel == pb.CHANNEL_THINKING:
                assert index not in ended, "thinking delta after thinking ended"
            else:
                assert index in ended, "answer delta before thinking ended"
            counts[index][event.delta.channel] += event.delta.token_count
        elif kind == "thinking_ended":
            assert index not in ended
            ended.add(index)
        else:
            finished[index] = event.finished
    assert sorted(finished) == list(range(n))
    for index, f in finished.items():
        assert f.usage.thinking_tokens == counts[index][pb.CHANNEL_THINKING]
        assert f.usage.answer_tokens == counts[index][pb.CHANNEL_ANSWER]
        assert f.weight_version


def test_ask_returns_thinking_answer_and_usage(client):
    result = client.ask("What is 123+456?", budget=128)
    assert result.thinking_end == "natural"
    assert result.thinking.startswith("123+456:3+6+0=9,9\n")
    assert result.usage.thinking_tokens == len(result.thinking)  # one token per character
    assert result.usage.answer_tokens == len(result.answer) >= 1
    assert result.finish_reason == "stop" and result.weight_version == "v0"
    assert 0 < result.timing["time_to_first_token_s"] <= result.timing["total_s"]


def test_budget_zero_disables_thinking(client):
    events = list(client.stream("What is 12+34?", budget=0))
    check_stream(events)
    result = collect(events)[0]
    assert result.thinking == "" and result.usage.thinking_tokens == 0
    assert result.thinking_end == "disabled" and result.usage.answer_tokens >= 1


def test_forced_close_injects_wrap_up_and_still_answers(client):
    info = client.model_info()
    asked = client.ask("What is 654321+123456?", budget=30, wrap_up=info.default_wrap_up)
    assert asked.thinking_end == "forced" and asked.usage.thinking_tokens == 30
    assert asked.thinking.endswith(info.default_wrap_up)  # a wrap-up the request sets
    assert asked.usage.answer_tokens >= 1 and asked.answer.strip()
    # the server's default one only where it takes at most wrap_up_max_share (0) of the budget
    for budget in (30, 200):
        plain = client.ask("What is 654321+123456?", budget=budget, temperature=1.0, seed=1)
        assert plain.usage.thinking_tokens <= budget
        assert not plain.thinking.endswith(info.default_wrap_up)
    custom = client.ask("What is 654321+123456?", budget=20, wrap_up="")
    assert custom.usage.thinking_tokens == 20 and not custom.thinking.endswith(info.default_wrap_up)


def test_min_thinking_extends_with_continuation(client):
    result = client.ask("What is 12+34?", budget=120, min_thinking=60)
    assert result.forced_continuations >= 1
    assert "Wait" in result.thinking
    assert 60 <= result.usage.thinking_tokens <= 120


def test_answer_gets_its_own_token_limit(client):
    result = client.ask("What is 654321+123456?", budget=40, max_answer_tokens=2)
    assert result.thinking_end == "forced"
    assert result.usage.answer_tokens == 2 and result.finish_reason == "length"


def test_budget_contract_over_random_requests(server):
    """200 requests, random budgets 0..128, random minimums and sampling: no violation."""
    rng = random.Random(1234)
    specs = []
    for i in range(200):
        budget = rng.randint(0, 128)
        specs.append(dict(prompt=rng.choice(PROMPTS), budget=budget,
                          min_thinking=rng.choice([0, rng.randint(0, budget)]),
                          max_answer_tokens=rng.randint(1, 24),
                          temperature=rng.choice([0.0, 0.7, 1.0]), seed=i))

    async def run_all():
        async with AsyncClient(server.target, token=API_TOKEN) as client:
            sem = asyncio.Semaphore(64)

            async def one(spec):
                async with sem:
                    options = dict(spec)
                    prompt = options.pop("prompt")
                    return [e async for e in client.stream(prompt, **options)]
            return await asyncio.gather(*(one(s) for s in specs))

    streams = asyncio.run(run_all())
    continued = forced = 0
    for spec, events in zip(specs, streams):
        check_stream(events)
        r = collect(events)[0]
        budget, minimum = spec["budget"], spec["min_thinking"]
        assert r.usage.thinking_tokens <= budget, (spec, r)
        assert r.usage.answer_tokens <= spec["max_answer_tokens"], (spec, r)
        if budget == 0:
            assert r.thinking_end == "disabled" and r.usage.thinking_tokens == 0
        elif r.thinking_end == "natural":
            assert r.usage.thinking_tokens >= minimum, (spec, r)
        else:
            assert r.thinking_end == "forced", (spec, r)
            forced += 1
            assert r.usage.answer_tokens >= 1, (spec, r)
        continued += r.forced_continuations > 0
    assert continued >= 5 and forced >= 20, (continued, forced)


LONG_PROMPT = "What is " + "1+" * 215 + "1?"  # 443 of the tiny model's 512 tokens: 68 left


@pytest.mark.parametrize("options,field", [
    (dict(budget=256), "thinking.budget"),
    (dict(min_thinking=40), "thinking.min_tokens"),  # the default budget fits 36 tokens
    (dict(budget=0, max_answer_tokens=100), "max_answer_tokens"),
    (dict(budget=0, max_answer_tokens=2**31 - 1), "max_answer_tokens")])
def test_what_the_client_set_is_never_cut_to_fit_the_context(client, options, field):
    with pytest.raises(RlvrError) as err:
        client.ask(LONG_PROMPT, **options)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.message.startswith(field) and "leaves" in err.value.message, err.value


def test_server_defaults_fit_the_context_and_the_response_says_how(client):
    full = client.ask("What is 1+1?")
    assert (full.effective_budget, full.effective_max_answer_tokens) == (256, 32)
    fitted = client.ask(LONG_PROMPT)  # default budget 256, default answer 32: as much as fits
    prompt = fitted.usage.prompt_tokens
    assert fitted.effective_max_answer_tokens == 32
    assert prompt == 443 and fitted.effective_budget == 512 - prompt - 1 - 32 == 36
    assert fitted.usage.thinking_tokens <= fitted.effective_budget


def test_64_concurrent_streams_complete(server):
    async def run_all():
        async with AsyncClient(server.target, token=API_TOKEN) as client:
            return await asyncio.gather(*(
                client.ask_n(PROMPTS[i % len(PROMPTS)], budget=64, temperature=0.8, seed=i)
                for i in range(64)))
    results = asyncio.run(run_all())
    assert len(results) == 64
    assert all(r[0].finish_reason in ("stop", "length") for r in results)


def test_n_choices_are_independent_and_tagged(client):
    events = list(client.stream("What is 4821+377?", budget=64, n=4, temperature=1.0, seed=7))
    check_stream(events, n=4)
    results = collect(events)
    assert [r.index for r in results] == [0, 1, 2, 3]


def test_hidden_thinking_is_counted_not_sent(client):
    result = client.ask("What is 4821+377?", budget=64, hide_thinking=True)
    assert result.thinking == "" and result.usage.thinking_tokens > 0


def wait_for_idle(server, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server.metrics()
        if metric_value(text, "rlvr_running_requests") == 0 and \
                metric_value(text, "rlvr_queue_depth") == 0:
            return text
        time.sleep(0.1)
    raise AssertionError(f"requests still running:\n{text}")


def test_cancelling_a_stream_frees_its_slot(server, client):
    long = dict(budget=440, min_thinking=430, max_answer_tokens=8)  # as long as fits in 512
    stream = client.stream("What is 4821+377?", **long)
    first = next(stream)
    assert first.WhichOneof("event") == "delta"
    assert metric_value(server.metrics(), "rlvr_running_requests") >= 1
    stream.close()  # cancels the RPC
    wait_for_idle(server)


def test_deadline_is_respected_and_frees_the_slot(server, client):
    with pytest.raises(RlvrError) as err:
        client.ask("What is 4821+377?", budget=440, min_thinking=430, timeout=0.3)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for_idle(server)


def test_abort_by_request_id(server, client):
    events = client.stream("What is 4821+377?", request_id="abort-me", budget=440,
                           min_thinking=430)
    first = next(events)  # the request is running and has produced thinking
    assert first.WhichOneof("event") == "delta"
    assert client.abort("abort-me", "no-such-request") == ["abort-me"]
    result = collect(itertools.chain([first], events))[0]
    assert result.finish_reason == "aborted" and result.usage.thinking_tokens > 0
    wait_for_idle(server)


def test_model_info(client):
    info = client.model_info()
    assert info.model_name == "tiny-reasoner" and info.weight_version == "v0"
    assert (info.think_start, info.think_end) == ("<think>", "</think>")
    assert info.context_length == 512 and info.default_continuation == "Wait"
    assert {p.effort: p.budget for p in info.effort_presets} == {
        pb.EFFORT_LOW: 16, pb.EFFORT_MEDIUM: 64, pb.EFFORT_HIGH: 256}


def test_effort_preset_maps_to_budget(client):
    result = client.ask("What is 654321+123456?", effort="low")
    assert result.usage.thinking_tokens <= 16 and result.thinking_end == "forced"


BAD_INPUTS = [
    (dict(budget=-1), "thinking.budget"),
    (dict(budget=100_000), "thinking.budget"),
    (dict(budget=8, min_thinking=9), "thinking.min_tokens"),
    (dict(min_thinking=-3), "thinking.min_tokens"),
    (dict(budget=8, effort="low"), "thinking.effort"),
    (dict(n=0), "sampling.n"),
    (dict(n=10_000), "sampling.n"),
    (dict(temperature=-0.5), "sampling.temperature"),
    (dict(temperature=float("nan")), "sampling.temperature"),
    (dict(top_p=0.0), "sampling.top_p"),
    (dict(top_k=-7), "sampling.top_k"),
    (dict(max_answer_tokens=0), "max_answer_tokens"),
    (dict(stop=[""]), "sampling.stop"),
    (dict(request_id="x" * 500), "request_id"),
]


@pytest.mark.parametrize("options,field", BAD_INPUTS, ids=[f for _, f in BAD_INPUTS])
def test_bad_input_is_invalid_argument_naming_the_field(client, options, field):
    with pytest.raises(RlvrError) as err:
        client.ask("What is 1+2?", **options)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.message


@pytest.mark.parametrize("prompt,field", [
    ("", "prompt"), ("   ", "prompt"), ("9" * 600, "prompt"),
    ([{"role": "tool", "content": "hi"}], "chat.messages"), ([], "chat.messages")])
def test_bad_prompts(client, prompt, field):
    with pytest.raises(RlvrError) as err:
        client.ask(prompt)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and field in err.value.message


def test_unknown_effort_enum_and_missing_input(server):
    with grpc.insecure_channel(server.target) as channel:
        stub = __import__("rlvr.v1.reasoning_pb2_grpc", fromlist=["x"]).ReasoningStub(channel)
        md = (("authorization", f"Bearer {API_TOKEN}"),)
        request = pb.GenerateRequest(prompt="What is 1+2?")
        request.thinking.effort = 42
        for bad, field in ((request, "thinking.effort"), (pb.GenerateRequest(), "prompt")):
            with pytest.raises(grpc.RpcError) as err:
                list(stub.Generate(bad, metadata=md))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in err.value.details()
    assert server.health("rlvr.v1.Reasoning") == health_pb2.HealthCheckResponse.SERVING


def test_auth_is_required_except_for_health(server):
    with Client(server.target) as anonymous, Client(server.target, token="wrong") as wrong:
        for c in (anonymous, wrong):
            with pytest.raises(RlvrError) as err:
                c.ask("What is 1+2?")
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert server.health("") == health_pb2.HealthCheckResponse.SERVING


def test_admission_queue_full_is_resource_exhausted(server):
    async def run_all():
        async with AsyncClient(server.target, token=API_TOKEN) as client:
            async def one(i):
                try:
                    await client.ask("What is 4821+377?", budget=400, min_thinking=300, seed=i,
                                     temperature=1.0)
                    return "OK"
                except RlvrError as err:
                    return err.code.name
            return await asyncio.gather(*(one(i) for i in range(130)))
    codes = asyncio.run(run_all())
    assert codes.count("RESOURCE_EXHAUSTED") > 0 and codes.count("OK") >= 96
    assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}
    wait_for_idle(server)


def test_one_caller_cannot_take_every_choice(server):
    """Per-caller share (128 choices in flight): a caller flooding n=16 requests gets
    RESOURCE_EXHAUSTED naming the share, while another caller is served meanwhile."""
    async def run_all():
        async with AsyncClient(server.target, token=API_TOKEN) as flooder, \
                AsyncClient(server.target, token=TRAIN_TOKEN) as other:
            async def flood(i):
                try:
                    await flooder.ask_n("What is 4821+377?", n=16, budget=200, min_thinking=150,
                                        seed=i, temperature=1.0)
                    return "OK"
                except RlvrError as err:
                    return err.message if err.code.name == "RESOURCE_EXHAUSTED" else err.code.name
            floods = [asyncio.create_task(flood(i)) for i in range(12)]
            await asyncio.sleep(0)
            served = await other.ask("What is 12+34?", budget=8)
            return await asyncio.gather(*floods), served
    codes, served = asyncio.run(run_all())
    rejected = [c for c in codes if "max_choices_per_caller" in c]
    assert codes.count("OK") == 8 and len(rejected) == 4, codes  # 8 x 16 = 128 admitted
    assert served.finish_reason in ("stop", "length")
    wait_for_idle(server)


def test_metrics_move(server, client):
    before = server.metrics()
    client.ask("What is 654321+123456?", budget=30)
    client.ask("What is 12+34?", budget=120, min_thinking=60)
    after = wait_for_idle(server)
    ok = 'code="OK",method="Generate"'
    assert metric_value(after, "rlvr_requests_total", ok) >= metric_value(before, "rlvr_requests_total", ok) + 2
    assert metric_value(after, "rlvr_thinking_end_total", 'reason="forced"') > \
        metric_value(before, "rlvr_thinking_end_total", 'reason="forced"')
    assert metric_value(after, "rlvr_forced_continuations_total") > \
        metric_value(before, "rlvr_forced_continuations_total")
    assert metric_value(after, "rlvr_time_to_first_token_seconds_count") >= 2
    assert metric_value(after, "rlvr_inter_token_latency_seconds_count") > 0
    assert metric_value(after, "rlvr_weight_version_info", 'version="v0"') == 1
    assert 'rlvr_requests_total{code="INVALID_ARGUMENT",method="Generate"}' in after


def test_seeded_choices_differ_but_reproduce(client):
    first = client.ask_n("What is 654321+123456?", budget=64, n=4, temperature=1.0, seed=11)
    again = client.ask_n("What is 654321+123456?", budget=64, n=4, temperature=1.0, seed=11)
    assert [r.thinking for r in first] == [r.thinking for r in again]
    assert len({r.thinking for r in first}) > 1
