"""The embedded model's world: a demo and a test fixture, not the product.

Its arithmetic task families (`tasks.py`), the tiny Qwen2-architecture model and its
character-level tokenizer (`tiny_model.py`), the supervised pre-training that made the shipped
weights (`pretrain.py`), held-out evaluation (`evaluate.py`) and the model card
(`model_card.py`), and a traffic generator that asks its tasks (`traffic.py`).
It registers what it offers through the plug-in interface (`rlvr/plugins.py`:
`models/tiny-reasoner/rlvr_plugins.json` names `reference_for` and `validation_items`);
the server and the trainer never import it.
"""
