"""Log-probs of given tokens without materialising full [batch, length, vocabulary] logits.

The decoder runs once; the output head and log-softmax run on chunks of positions, each
under activation checkpointing, so at most one [batch, chunk, vocabulary] float32 block is
alive at a time, in forward and in backward (a 151k vocabulary costs ~2.5 GB per 4k-token row
for one full copy).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


def _parts(model):
    """(decoder, output head) of a causal LM, also under a peft wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def token_logprobs(model, ids: torch.Tensor, attention: torch.Tensor, temperature: float = 1.0,
                   chunk: int = 512) -> torch.Tensor:
    """Log-prob of each next token at `temperature`: ids [B, T] -> [B, T-1]."""
    decoder, head = _parts(model)
    hidden = decoder(input_ids=ids, attention_mask=attention).last_hidden_state[:, :-1]
    #                                                                       hidden [B, T-1, H]
    targets = ids[:, 1:]                                                           # [B, T-1]

    def block(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = head(h).float() / temperature                                     # [B, c, V]
        return torch.log_softmax(logits, dim=-1).gather(-1, t.unsqueeze(-1)).squeeze(-1)

    out = []
    for start in range(0, targets.shape[1], chunk):
        h = hidden[:, start:start + chunk]                                         # [B, c, H]
        t = targets[:, start:start + chunk]                                        # [B, c]
        out.append(checkpoint(block, h, t, use_reentrant=False) if torch.is_grad_enabled()
                   else block(h, t))
    return torch.cat(out, dim=1)                                                   # [B, T-1]
