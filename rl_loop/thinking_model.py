r"""Give any Hugging Face causal LM thinking delimiters, so the runtime can serve it with budgets.

`add_thinking(src, out)` contract:
- `src` is a causal-LM folder (config, weights, tokenizer with a chat template) whose vocabulary
  has neither delimiter; otherwise ValueError, and nothing is written. `out` must not exist yet
  (or be empty): FileExistsError otherwise.
- `out` gets a full copy (safetensors, the source's dtype) in which `think_start`/`think_end` are
  two new special tokens at the end of the vocabulary; the input embeddings (and an untied output
  head) grow to the new vocabulary size (a matrix padded beyond it, as Qwen's are, keeps its size
  and the tokens take padding rows); the chat template is the source's, wrapped so that with
  `add_generation_prompt` its output is exactly the source's followed by `think_start`
  (ChatML: `<|im_start|>assistant\n<think>`), and without it unchanged.
- Both new rows (input and, when untied, output) are `INIT_SCALE` times the row of
  `INIT_TOKEN` ("\n"), not transformers' default near the mean of all rows. As input, a mean row
  reads as noise: SmolLM2-135M then writes "\n" and ends the sequence inside thinking. A scaled
  line break reads like a line break (the layers' input norms mostly undo the scale); as an
  output row it scores `INIT_SCALE` times the line break's logit, below it wherever that logit
  is positive (SmolLM2: `</think>` ranks ~40,000th as the first token, and greedy decoding of
  four probe prompts never picks it).
- Every end-of-sequence id (config, generation config, tokenizer) is kept as it was.
- Before returning, `out` is reloaded and checked (RuntimeError otherwise): both delimiters
  single tokens, the rendered template and the end-of-sequence ids as described above.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

log = logging.getLogger(__name__)

INIT_TOKEN = "\n"
INIT_SCALE = 0.5
PROBE = [{"role": "user", "content": "What is 12+34?"}]


def wrap_template(template: str, think_start: str) -> str:
    """`template` rendered unchanged, then `think_start` when add_generation_prompt is true.

    The `{{ '' }}` guards keep HF's trim_blocks/lstrip_blocks from eating the source's leading
    newline or trailing indentation at the new block tags.
    """
    return ("{% set __source_output %}{{ '' }}" + template + "{{ '' }}{% endset %}"
            "{{ __source_output }}{% if add_generation_prompt %}{{ " + json.dumps(think_start)
            + " }}{% endif %}")


def _render(tokenizer, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(PROBE, add_generation_prompt=generation_prompt,
                                         tokenize=False)


def add_thinking(src: Path, out: Path, think_start: str = "<think>",
                 think_end: str = "</think>") -> Path:
    """Write a copy of the model folder `src` with thinking delimiters to `out` (see module doc)."""
    src, out = Path(src), Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    tokenizer = AutoTokenizer.from_pretrained(src)
    vocab = tokenizer.get_vocab()
    if think_start in vocab or think_end in vocab:
        raise ValueError(f"{src} already has {think_start!r} or {think_end!r} in its vocabulary")
    if not tokenizer.chat_template:
        raise ValueError(f"{src} has no chat template")
    source_renders = (_render(tokenizer, False), _render(tokenizer, True))
    init_ids = tokenizer.encode(INIT_TOKEN, add_special_tokens=False)
    if len(init_ids) != 1:
        raise ValueError(f"{INIT_TOKEN!r} is not one token of {src}'s vocabulary")

    model = AutoModelForCausalLM.from_pretrained(src, dtype="auto")
    eos = (model.config.eos_token_id, model.generation_config.eos_token_id, tokenizer.eos_token)
    log.info("adding %r/%r to %s (%s)", think_start, think_end, src, model.dtype)
    tokenizer.add_special_tokens({"additional_special_tokens": [think_start, think_end]},
                                 replace_extra_special_tokens=False)
    template = tokenizer.chat_template  # a str, or a dict of named templates
    tokenizer.chat_template = (
        {name: wrap_template(text, think_start) for name, text in template.items()}
        if isinstance(template, dict) else wrap_template(template, think_start))
    new_ids = tokenizer.convert_tokens_to_ids([think_start, think_end])
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        tables = {model.get_input_embeddings().weight, model.get_output_embeddings().weight}
        for table in tables:  # one table when input and output embeddings are tied
            table[new_ids] = INIT_SCALE * table[init_ids[0]]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _check(out, think_start, think_end, source_renders, eos)
    log.info("wrote %s (delimiter ids %s)", out, new_ids)
    return out


def _check(out: Path, think_start: str, think_end: str, source_renders: tuple[str, str],
           eos: tuple) -> None:
    tokenizer = AutoTokenizer.from_pretrained(out)
    for token in (think_start, think_end):
        if len(tokenizer.encode(token, add_special_tokens=False)) != 1:
            raise RuntimeError(f"{token!r} is not a single token in {out}")
    if (_render(tokenizer, False), _render(tokenizer, True)) != (
            source_renders[0], source_renders[1] + think_start):
        raise RuntimeError(f"{out}: the wrapped chat template does not render as intended")
    saved = (AutoConfig.from_pretrained(out).eos_token_id,
             GenerationConfig.from_pretrained(out).eos_token_id, tokenizer.eos_token)
    if saved != eos:
        raise RuntimeError(f"{out}: end-of-sequence ids changed from {eos} to {saved}")
