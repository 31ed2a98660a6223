"""Hostile input against the real server: property-based requests to every RPC (hypothesis).

Every generated request must end in a documented status code, the server must stay healthy
and answer normally afterwards, and its memory must stay bounded. Requests are built from
the full value ranges of every field (negative, huge, NaN, infinities, unicode edge cases,
unknown enum values, oversized prompts), plus raw bytes that are not a message at all.
"""

from __future__ import annotations

import dataclasses
import json

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlvr.settings import toml_value
from rlvr.v1 import reasoning_pb2 as pb
from rlvr.v1 import reasoning_pb2_grpc as pb_grpc
from runtime.config import ConfigError, ServerConfig, load_config
from tests.conftest import API_TOKEN, TRAIN_TOKEN

pytestmark = [pytest.mark.reliability, pytest.mark.heavy]

OK = grpc.StatusCode.OK
DOCUMENTED = {OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.DEADLINE_EXCEEDED,
              grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}
# Bytes that do not decode as the request message are refused by gRPC itself, before the service.
UNDECODABLE = {grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT}
EXAMPLES = {"generate": 6000, "feedback": 2000, "abort": 1000, "bytes": 1000}  # 10,000 in all

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
int32 = st.one_of(st.integers(-2**31, 2**31 - 1), st.integers(-2, 40))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1, 3))
prompts = st.one_of(text, st.just(""), st.just("What is 12+34?"),
                    st.builds(lambda n: "9" * n, st.integers(0, 3_000_000)))
kinds = st.one_of(st.sampled_from(["", "numeric", "exact", "choice", "math", "code"]), text)


@st.composite
def generate_requests(draw) -> pb.GenerateRequest:
    r = pb.GenerateRequest(request_id=draw(text), shadow=draw(st.booleans()),
                           return_tokens=draw(st.booleans()), return_logprobs=draw(st.booleans()))
    if draw(st.booleans()):
        r.prompt = draw(prompts)
    elif draw(st.booleans()):
        r.chat.messages.extend(pb.ChatMessage(role=draw(text), content=draw(text))
                               for _ in range(draw(st.integers(0, 3))))
    s = r.sampling
    for name, values in (("temperature", floats), ("top_p", floats), ("top_k", int32),
                         ("seed", st.integers(-2**63, 2**63 - 1)), ("n", int32)):
        if draw(st.booleans()):
            setattr(s, name, draw(values))
    s.stop.extend(draw(st.lists(text, max_size=3)))
    if draw(st.booleans()):
        r.max_answer_tokens = draw(int32)
    t = r.thinking
    for name, values in (("budget", int32), ("min_tokens", int32), ("wrap_up", text),
                         ("continuation", text)):
        if draw(st.booleans()):
            setattr(t, name, draw(values))
    t.effort = draw(st.integers(0, 7))  # proto3 enums are open: unknown values arrive as ints
    t.hide_thinking = draw(st.booleans())
    if draw(st.booleans()):
        v = r.verification
        v.kind, v.reference, v.tolerance = draw(kinds), draw(text), draw(floats)
        v.tests.extend(draw(st.lists(text, max_size=2)))
        v.best_of_n = draw(st.booleans())
    return r


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target, options=[
            ("grpc.max_send_message_length", 64 << 20)]) as channel:
        yield pb_grpc.ReasoningStub(channel), channel


def code_of(call) -> grpc.StatusCode:
    try:
        for _ in call:
            pass
    except grpc.RpcError as err:
        return err.code()
    return OK


def fuzz(server, stub):
    reasoning, channel = stub
    token = [("authorization", f"Bearer {API_TOKEN}")]
    trusted = [("authorization", f"Bearer {TRAIN_TOKEN}")]
    quick = settings(deadline=None, database=None, derandomize=True,
                     suppress_health_check=list(HealthCheck))

    @settings(quick, max_examples=EXAMPLES["generate"])
    @given(generate_requests(), st.booleans())
    def generate(request, as_trainer):
        call = reasoning.Generate(request, timeout=5, metadata=trusted if as_trainer else token)
        assert code_of(call) in DOCUMENTED

    @settings(quick, max_examples=EXAMPLES["feedback"])
    @given(text, st.integers(0, 2**32 - 1), st.one_of(floats, st.none()), kinds, text,
           st.booleans())
    def feedback(request_id, index, reward, kind, reference, replace):
        request = pb.FeedbackRequest(request_id=request_id, index=index, replace=replace)
        if reward is not None:
            request.reward = reward
        else:
            request.verification.kind, request.verification.reference = kind, reference
        try:
            reasoning.SubmitFeedback(request, timeout=5, metadata=token)
        except grpc.RpcError as err:
            assert err.code() in DOCUMENTED | {grpc.StatusCode.FAILED_PRECONDITION}

    @settings(quick, max_examples=EXAMPLES["abort"])
    @given(st.lists(text, max_size=20))
    def abort(ids):
        assert reasoning.Abort(pb.AbortRequest(request_ids=ids), timeout=5,
                               metadata=token).aborted == []

    raw = channel.unary_stream("/rlvr.v1.Reasoning/Generate",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)

    @settings(quick, max_examples=EXAMPLES["bytes"])
    @given(st.binary(max_size=200))
    def wire(payload):
        assert code_of(raw(payload, timeout=5, metadata=token)) in DOCUMENTED | UNDECODABLE

    for run in (generate, feedback, abort, wire):
        run()


@pytest.mark.engine
def test_ten_thousand_hostile_requests_get_documented_codes(server, stub, client):
    process = psutil.Process(server.proc.pid)
    client.ask("What is 1+1?", budget=8)  # warm
    before = process.memory_info().rss
    fuzz(server, stub)
    assert server.health("rlvr.v1.Reasoning") == health_pb2.HealthCheckResponse.SERVING
    assert client.ask("What is 12+34?", budget=64).finish_reason == "stop"
    growth = (process.memory_info().rss - before) / 2**20
    assert growth < 300, f"server memory grew by {growth:.0f} MiB"


config_values = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=True), text,
                          st.booleans(), st.lists(text, max_size=3), st.lists(st.integers(),
                                                                               max_size=2))


@settings(max_examples=2000, deadline=None, database=None, derandomize=True)
@given(st.dictionaries(st.one_of(st.sampled_from(
    [f.name for f in dataclasses.fields(ServerConfig)]), text), config_values, max_size=4),
    st.dictionaries(st.sampled_from(["RLVR_PORT", "RLVR_MAX_N", "RLVR_TRAIN",
                                                  "RLVR_API_TOKENS", "RLVR_KV_CACHE_GIB"]),
                                 text, max_size=2))
def test_config_file_and_env_fuzz_only_raise_config_errors(tmp_path_factory, data, env):
    path = tmp_path_factory.mktemp("cfg") / "c.toml"
    path.write_text("".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in data.items()))
    try:
        load_config(path, env=env)
    except ConfigError as err:
        assert str(err)


@settings(max_examples=2000, deadline=None, database=None, derandomize=True)
@given(st.sampled_from(["ask", "train", "traffic", "demo", "bench", "eval", "serve", "status"]),
       st.lists(st.one_of(st.sampled_from(["--budget", "--rate", "--lr", "--n", "--duration",
                                           "--paused", "--group-size", "--device", "--train",
                                           "--requests", "--temperature", "--timeout",
                                           "--port", "--swaps", "--lora-rank"]), text),
                max_size=4))
def test_cli_flag_fuzz_parses_or_exits_with_usage(command, argv):
    from clients.cli import build_parser

    try:
        build_parser().parse_args([command, *argv])
    except SystemExit as exit_:
        assert exit_.code == 2
