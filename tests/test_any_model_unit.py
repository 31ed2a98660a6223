"""What makes the runtime and trainer model-agnostic, without an engine: the chat format read
from a model's own files, engine settings per platform, the trainer's device, chunked
log-probs, micro-batches, and the gate's paired rule."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from rl_loop import gate
from rl_loop.logprobs import token_logprobs
from runtime import engine_args
from runtime.chat_format import ChatFormat
from runtime.config import MODEL_DIR

QWEN3_STYLE = (  # the generation prompt does not open thinking: the model writes <think>
    "{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL_DIR)


def test_the_embedded_template_opens_thinking(tokenizer):
    fmt = ChatFormat.load(MODEL_DIR, tokenizer)
    assert fmt.supports_thinking and fmt.opens_thinking
    ids = fmt.prompt_ids([{"role": "user", "content": "What is 1+1?"}])
    assert ids[-1] == fmt.think_start_id and ids.count(fmt.think_start_id) == 1
    assert fmt.eos_ids == {tokenizer.eos_token_id}


def test_a_template_that_does_not_open_thinking_gets_the_start_token(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = QWEN3_STYLE
    fmt = ChatFormat.load(MODEL_DIR, tok)
    assert fmt.supports_thinking and not fmt.opens_thinking
    ids = fmt.prompt_ids([{"role": "user", "content": "What is 1+1?"}])
    assert ids[-1] == fmt.think_start_id and ids[-2] == tok.convert_tokens_to_ids("<|assistant|>")


def test_without_single_token_delimiters_the_model_does_not_think(tokenizer):
    fmt = ChatFormat.load(MODEL_DIR, tokenizer, "<reason>", "</reason>")
    assert not fmt.supports_thinking and fmt.think_end_id is None
    ids = fmt.prompt_ids([{"role": "user", "content": "hi"}])
    assert ids == ChatFormat.load(MODEL_DIR, tokenizer).prompt_ids(
        [{"role": "user", "content": "hi"}])  # the template's own output, nothing appended


def test_every_eos_id_of_the_generation_config_ends_a_choice(tokenizer, tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [1, 5, 6]}))
    assert ChatFormat.load(tmp_path, tokenizer).eos_ids == {1, 5, 6}
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 6}))
    assert ChatFormat.load(tmp_path, tokenizer).eos_ids == {1, 6}


def test_engine_settings_apply_cpu_workarounds_only_on_cpu(monkeypatch):
    monkeypatch.setattr(engine_args, "on_cpu", lambda: True)
    cpu = engine_args.engine_kwargs(MODEL_DIR)
    assert cpu["enforce_eager"] and not cpu["enable_chunked_prefill"]
    assert cpu["dtype"] == "float32" and "gpu_memory_utilization" not in cpu  # the folder's own
    assert cpu["reasoning_parser"] == "deepseek_r1"
    monkeypatch.setattr(engine_args, "on_cpu", lambda: False)
    gpu = engine_args.engine_kwargs(MODEL_DIR, engine_args.EngineSettings(
        gpu_memory_share=0.45, kv_cache_gib=2))
    assert "enforce_eager" not in gpu and "enable_chunked_prefill" not in gpu
    assert gpu["gpu_memory_utilization"] == 0.45 and gpu["kv_cache_memory_bytes"] == 2 << 30
    plain = engine_args.engine_kwargs(MODEL_DIR, engine_args.EngineSettings(
        think_start="<reason>", think_end="</reason>"))
    assert "reasoning_parser" not in plain  # a model without delimiters starts anyway


def test_a_half_precision_folder_runs_in_float32_on_a_cpu_without_bf16(monkeypatch, tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({"dtype": "bfloat16"}))
    monkeypatch.setattr(engine_args, "on_cpu", lambda: True)
    monkeypatch.setattr(engine_args, "cpu_has_bf16", lambda: False)
    assert engine_args.model_dtype(tmp_path) == "float32"
    assert engine_args.model_dtype(tmp_path, "bfloat16") == "bfloat16"  # asked for: kept
    assert engine_args.model_dtype(MODEL_DIR) == "float32"              # the toy's own
    monkeypatch.setattr(engine_args, "cpu_has_bf16", lambda: True)
    assert engine_args.model_dtype(tmp_path) == "bfloat16"
    monkeypatch.setattr(engine_args, "on_cpu", lambda: False)
    monkeypatch.setattr(engine_args, "cpu_has_bf16", lambda: False)
    assert engine_args.model_dtype(tmp_path) == "bfloat16"              # a GPU: its own


def test_the_engine_leaves_room_for_a_trainer_on_the_only_gpu():
    from runtime.config import ServerConfig

    assert ServerConfig(train="on").engine_settings(gpus=1).gpu_memory_share == 0.45
    assert ServerConfig(train="on").engine_settings(gpus=2).gpu_memory_share == 0.9
    assert ServerConfig(train="off").engine_settings(gpus=1).gpu_memory_share == 0.9
    assert ServerConfig(gpu_memory_share=0.7).engine_settings(gpus=1).gpu_memory_share == 0.7


def test_the_trainer_takes_the_second_gpu_when_there_are_two(monkeypatch):
    from rl_loop.trainer import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert str(pick_device("auto")) == "cuda:1"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert str(pick_device("auto")) == "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert str(pick_device("auto")) == "cpu" and str(pick_device("cuda:3")) == "cuda:3"


def test_chunked_log_probs_equal_the_full_logits_ones_and_their_gradients():
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32)
    ids = torch.randint(10, 200, (3, 40))
    attention = torch.ones_like(ids)
    full = torch.log_softmax(model(input_ids=ids, attention_mask=attention).logits[:, :-1] / 0.8,
                             -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    chunked = token_logprobs(model, ids, attention, 0.8, chunk=7)
    assert chunked.shape == (3, 39) and torch.allclose(chunked, full, atol=1e-5)
    grad_full = torch.autograd.grad(full.sum(), model.lm_head.weight)[0]
    grad_chunked = torch.autograd.grad(chunked.sum(), model.lm_head.weight)[0]
    assert torch.allclose(grad_full, grad_chunked, atol=1e-4)


def item(i: int, decisive: bool = True) -> gate.ValidationItem:
    return gate.ValidationItem.make(f"q{i}", {"kind": "numeric", "reference": "1"}, None,
                                    decisive=decisive)


def test_the_gate_rejects_only_a_candidate_worse_beyond_noise():
    items = [item(i) for i in range(100)]
    served = {i.key: float(n % 10 < 8) for n, i in enumerate(items)}  # 0.80

    def with_flips(worse: int) -> dict:  # `worse` items the served got right, now wrong
        right = [i.key for i in items if served[i.key]]
        return served | {k: 0.0 for k in right[:worse]}
    assert gate.decide(items, with_flips(2), served, 1.645, 20).promote  # 2 points: noise
    bad = gate.decide(items, with_flips(8), served, 1.645, 20)
    assert not bad.promote and "worse beyond noise" in bad.reason and bad.candidate == 0.72
    few = gate.decide(items[:5], served, served, 1.645, 20)
    assert not few.promote and few.reason.startswith("too few validation items")
    report_only = [item(i, decisive=False) for i in range(100, 150)]
    zeros = {i.key: 0.0 for i in report_only}
    assert gate.decide(items + report_only, served | zeros, served | {k: 1.0 for k in zeros},
                       1.645, 20).promote  # reported-only items never decide


def test_validation_is_a_stable_hash_slice():
    prompts = [f"What is {i}+{i}?" for i in range(2000)]
    chosen = [p for p in prompts if gate.is_validation(p, 0.1)]
    assert 150 < len(chosen) < 250 and chosen == [p for p in prompts if gate.is_validation(p, 0.1)]
    assert not any(gate.is_validation(p, 0.0) for p in prompts)


def test_a_bad_plugin_file_is_a_clear_error(tmp_path):
    from rlvr import plugins

    assert plugins.load(tmp_path, "reference_check") is None  # no file: nothing registered
    for content, needle in (("{nope", "rlvr_plugins.json"),
                            ('{"reference_check": "no.such.module:f"}', "does not resolve"),
                            ('{"reference_check": "rlvr.plugins:missing"}', "does not resolve")):
        (tmp_path / plugins.FILE).write_text(content)
        with pytest.raises(plugins.PluginError, match=needle):
            plugins.load(tmp_path, "reference_check")
    with pytest.raises(plugins.PluginError, match="unknown plug-in point"):
        plugins.load(tmp_path, "something_else")
    assert plugins.load(MODEL_DIR, "reference_check")("What is 2+3?") == "5"
