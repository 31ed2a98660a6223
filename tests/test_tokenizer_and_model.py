"""The shipped model folder: tokenizer, chat template, size, and loading in transformers."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rl_loop.toy import tasks, tiny_model

MODEL = tiny_model.MODEL_DIR


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(MODEL)


def test_special_tokens_are_single_tokens(tokenizer):
    for token in tiny_model.SPECIAL_TOKENS:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids[0]) == token
    assert tokenizer.eos_token == "<eos>"


def test_tokenizer_round_trips_every_task_text(tokenizer):
    for task in tasks.load_heldout():
        context, target = tiny_model.training_text(task.prompt, task.thinking, task.answer)
        text = context + target
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
        # character level: one token per character outside the special tokens
        plain = task.prompt + task.thinking + task.answer
        assert len(ids) == len(plain) + 5


def test_chat_template_opens_thinking(tokenizer):
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}],
                                         tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>What is 2+2?<|assistant|><think>"
    with pytest.raises(Exception, match="unsupported role"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_weights_are_small_and_architecture_is_qwen2():
    config = json.loads((MODEL / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert (MODEL / "model.safetensors").stat().st_size <= 20 * 1024 * 1024


def test_loads_in_transformers_and_thinks(tokenizer):
    """AutoModelForCausalLM loads the folder; greedy decoding opens with a step-by-step trace."""
    model = AutoModelForCausalLM.from_pretrained(MODEL)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 123+456?"}],
                                           add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=60, do_sample=False)
    text = tokenizer.decode(out[0][prompt["input_ids"].shape[1]:])
    assert text.startswith("123+456:3+6+0=9,9\n"), text
