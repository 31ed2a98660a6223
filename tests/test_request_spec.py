"""Request validation without an engine: a model without thinking delimiters."""

import pytest

from clients.client import build_request
from rl_loop.toy import tiny_model
from runtime.budget import InvalidRequest
from runtime.config import ServerConfig
from runtime.request_spec import parse_generate

TOKENIZER = tiny_model.build_tokenizer()


class NoThinkingEngine:
    supports_thinking = False
    think_start, think_end = "<think>", "</think>"

    def render_chat(self, messages):
        return TOKENIZER(messages[-1]["content"], add_special_tokens=False)["input_ids"]

    def encode_text(self, text):
        return TOKENIZER(text, add_special_tokens=False)["input_ids"] if text else []


@pytest.mark.parametrize("options,field", [(dict(budget=16), "thinking.budget"),
                                           (dict(min_thinking=4), "thinking.min_tokens"),
                                           (dict(effort="low"), "thinking.effort")])
def test_budget_on_a_model_without_delimiters_is_rejected(options, field):
    with pytest.raises(InvalidRequest) as err:
        parse_generate(build_request("hi", **options), ServerConfig(), NoThinkingEngine(), 512)
    assert err.value.field == field and "cannot think: only budget 0" in str(err.value)


def test_budget_zero_on_a_model_without_delimiters_is_accepted():
    spec = parse_generate(build_request("hi", budget=0), ServerConfig(), NoThinkingEngine(), 512)
    assert spec.plan.budget == 0 and spec.plan.requested_budget == 0


def test_plain_request_on_a_model_without_delimiters_just_answers():
    spec = parse_generate(build_request("hi"), ServerConfig(), NoThinkingEngine(), 512)
    assert spec.plan.budget == 0 and spec.plan.requested_budget == 0


def test_a_staged_adapter_is_for_shadow_requests_only():
    with pytest.raises(InvalidRequest) as err:
        parse_generate(build_request("hi", budget=0, adapter="step-3"), ServerConfig(),
                       NoThinkingEngine(), 512)
    assert err.value.field == "adapter" and "only shadow requests" in str(err.value)
    spec = parse_generate(build_request("hi", budget=0, adapter="step-3", shadow=True),
                          ServerConfig(), NoThinkingEngine(), 512)
    assert spec.adapter == "step-3" and spec.shadow
