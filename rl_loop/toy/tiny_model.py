"""The embedded model's tokenizer, chat format and architecture (a tiny Qwen2, built from scratch).

The tokenizer is byte level with no merges: every byte is one token (so every ASCII character
is one token and any text round-trips), plus special tokens for the chat roles, the thinking
delimiters and end of sequence. It is a byte-level BPE exactly like Qwen2's, only without
merges, so transformers' `Qwen2Tokenizer` (which `AutoTokenizer` picks for `model_type: qwen2`,
whatever `tokenizer_class` says) and vLLM rebuild the very same tokenizer from the folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
THINK_START, THINK_END = "<think>", "</think>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = [PAD, EOS, UNK, THINK_START, THINK_END, USER, ASSISTANT]

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "tiny-reasoner"

# Renders user/assistant turns; the generation prompt opens thinking.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{{ message['content'] }}" + EOS +
    "{% else %}{{ raise_exception('unsupported role: ' + message['role'] + "
    "' (the tiny model knows only user and assistant)') }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + THINK_START + "{% endif %}"
)

ARCHITECTURE = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
    "attention_dropout": 0.0,
    "use_sliding_window": False,
}


@functools.lru_cache(maxsize=1)
def byte_symbols() -> list[str]:
    """The 256 byte-level symbols, in byte order."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    return [table[b] for b in range(256)]


def build_tokenizer():
    """Character-level PreTrainedTokenizerFast with the project's special tokens."""
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + byte_symbols())}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], continuing_subword_prefix="",
                                end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK,
        additional_special_tokens=[THINK_START, THINK_END, USER, ASSISTANT],
        model_max_length=ARCHITECTURE["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_config(tokenizer):
    """Qwen2Config for the tiny model, with the tokenizer's special ids."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.convert_tokens_to_ids(USER),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
        **{k: v for k, v in ARCHITECTURE.items() if k not in ("architectures", "model_type")},
    )


def chat_prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the chat template with the generation prompt (which opens thinking)."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids)  # BatchEncoding or list


def training_text(prompt: str, thinking: str, answer: str) -> tuple[str, str]:
    """(context, target) strings of one chat example; the loss covers only the target."""
    return f"{USER}{prompt}{ASSISTANT}{THINK_START}", f"{thinking}{THINK_END}{answer}{EOS}"
