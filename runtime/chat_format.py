"""A model's own chat and thinking format, read from its tokenizer and generation config.

Works for any Hugging Face model folder, the embedded one included:
- the prompt is the model's own chat template (`tokenizer.apply_chat_template`) with its
  generation prompt;
- thinking delimiters (configured, `<think>`/`</think>` by default) count only when each is a
  single token of the vocabulary; otherwise the model does not think (`supports_thinking`
  False: budget 0 only);
- a template whose generation prompt does not open thinking (Qwen3's: the model writes
  `<think>` itself) gets the start token appended by the runtime, so every prompt of a thinking
  model ends inside thinking and the budget counts from the first generated token;
- every end-of-sequence id of the generation config (and the tokenizer's) ends a choice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

THINK_START, THINK_END = "<think>", "</think>"
PROBE = [{"role": "user", "content": "1+1?"}]


def _ids(rendered) -> list[int]:
    """apply_chat_template(tokenize=True) returns a BatchEncoding or a list, by version."""
    return list(rendered["input_ids"]) if hasattr(rendered, "keys") else list(rendered)


def eos_ids_of(model_dir: Path, tokenizer) -> frozenset[int]:
    """Every end-of-sequence id: the generation config's (an int or a list) and the tokenizer's."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    path = Path(model_dir) / "generation_config.json"
    if path.is_file():
        eos = json.loads(path.read_text()).get("eos_token_id")
        ids |= set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    return frozenset(int(i) for i in ids)


def single_token(tokenizer, text: str) -> int | None:
    """The id of `text` when it is one token of the vocabulary, else None."""
    if not text:
        return None
    token_id = tokenizer.get_vocab().get(text)
    return None if token_id is None else int(token_id)


@dataclass(frozen=True)
class ChatFormat:
    tokenizer: object
    eos_ids: frozenset[int]
    think_start: str = THINK_START
    think_end: str = THINK_END
    think_start_id: int | None = None  # None: the model has no thinking delimiters
    think_end_id: int | None = None
    opens_thinking: bool = True        # the template's generation prompt holds the start token

    @classmethod
    def load(cls, model_dir: Path, tokenizer, think_start: str = THINK_START,
             think_end: str = THINK_END) -> "ChatFormat":
        start, end = single_token(tokenizer, think_start), single_token(tokenizer, think_end)
        if start is None or end is None:
            start = end = None
        fmt = cls(tokenizer, eos_ids_of(model_dir, tokenizer), think_start, think_end, start, end)
        if start is None:
            return fmt
        with_prompt = _ids(tokenizer.apply_chat_template(PROBE, add_generation_prompt=True))
        without = _ids(tokenizer.apply_chat_template(PROBE, add_generation_prompt=False))
        suffix = with_prompt[len(without):] if with_prompt[:len(without)] == without \
            else with_prompt[-4:]
        return cls(fmt.tokenizer, fmt.eos_ids, think_start, think_end, start, end,
                   opens_thinking=start in suffix)

    @property
    def supports_thinking(self) -> bool:
        return self.think_end_id is not None

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat template with its generation prompt, ending inside thinking when the model
        thinks (raises what the template raises for messages it cannot render)."""
        ids = _ids(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True))
        if self.supports_thinking and not self.opens_thinking:
            ids.append(self.think_start_id)
        return ids
