"""The embedded model's card: README.md, eval.json and an accuracy-vs-budget plot, from `rlvr eval`."""

from __future__ import annotations

import json
from pathlib import Path

CARD_BUDGETS = ("0", "8", "16", "32", "64", "unlimited")


def write_card(model_dir: Path, results: dict, n_params: int) -> Path:
    """Write eval.json, accuracy_vs_budget.png and README.md into the model folder."""
    training = json.loads((model_dir / "training.json").read_text())
    (model_dir / "eval.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    plot_accuracy_vs_budget(results, model_dir / "accuracy_vs_budget.png")
    (model_dir / "README.md").write_text(render(results, training, n_params))
    return model_dir / "README.md"


def plot_accuracy_vs_budget(results: dict, path: Path) -> None:
    """One line per family plus the total: held-out accuracy at each thinking budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [b for b in CARD_BUDGETS if b in results]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family in results[labels[0]]:
        ys = [results[b][family]["accuracy"] for b in labels]
        ax.plot(labels, ys, marker="o", linewidth=3 if family == "total" else 1.2, label=family)
    ax.set_xlabel("thinking budget (tokens)")
    ax.set_ylabel("held-out accuracy (greedy)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("tiny-reasoner: accuracy vs thinking budget")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _table(results: dict, key: str, fmt: str) -> str:
    labels = [b for b in CARD_BUDGETS if b in results]
    families = list(results[labels[0]])
    lines = ["| family | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for family in families:
        cells = [fmt.format(results[b][family][key]) for b in labels]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(results: dict, training: dict, n_params: int) -> str:
    """Markdown model card."""
    unlimited = results["unlimited"]
    per_family = "\n".join(
        f"| {family} | {row['n']} | {row['accuracy']:.3f} | {row['mean_thinking_tokens']:.1f} |"
        for family, row in unlimited.items())
    return f"""# tiny-reasoner

The embedded default model of this runtime: a {n_params:,}-parameter `Qwen2ForCausalLM` with a
byte-level tokenizer without merges (one token per ASCII character; `<think>`, `</think>`,
`<eos>` and the chat roles are single special tokens), trained from scratch on the project's
own verifiable task families (`rl_loop/toy/tasks.py`). It thinks step by step (digit by digit, with
carries and borrows, restating what is left of the operands on each line), then answers.
Some training traces were cut short and still end in the correct answer, so the model answers
after a forced `</think>`. It is **deliberately not converged**, so that online RL has room to
improve it (`rlvr train-base --converge` trains the reference for how far it could go).

- Training command: `{training['command']}`
- Training time: {training['seconds']:.0f} s on {training['threads']} CPU threads
  ({training['steps']} steps, batch {training['batch_size']}, lr {training['lr']}, seed {training['seed']});
  deterministic: the same seed gives bit-identical weights.
- Families: `add`, `sub` (2-6 digits), `mul` (multi-digit by 1-2 digits), `cmp` (which decimal
  is bigger), `lin` (solve a*x+b=c); all checked by the `numeric` verifier.
- Held-out set: `models/heldout.jsonl` (prompts from a hash bucket that training never draws).

## Held-out accuracy, unlimited thinking (greedy)

| family | n | accuracy | mean thinking tokens |
|---|---|---|---|
{per_family}

## Accuracy vs thinking budget

A budget forces `</think>` after that many thinking tokens; the answer then gets its own tokens.

{_table(results, "accuracy", "{:.3f}")}

Mean thinking tokens:

{_table(results, "mean_thinking_tokens", "{:.1f}")}

![accuracy vs thinking budget](accuracy_vs_budget.png)

Every number above is produced by
`rlvr eval --model models/tiny-reasoner --budget 0,8,16,32,64,unlimited --card`
(greedy decoding through vLLM; `eval.json` holds the same numbers for machines).
"""
