"""Classify texts with stage 4's encoder: `python -m stage4_transformer.classify_train --dataset sst2`.

The same data sets and splits as stage 1 (and stages 2 and 6): the words of each text, with their
positions, through the Transformer's encoder layers (every word attends to every other), pooled
(`--pool mean`, or `first`: a <bos> read as a summary token) and classified. No decoder: classifying
needs one vector per text, not a sequence out. Writes runs/stage4_transformer/<dataset>-classify-<preset>/.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.classify import load_word_data, train_classifier
from shared.cli import run_main
from shared.run import Run
from shared.tokenizers import BOS_ID
from shared.train import make_adamw
from stage4_transformer.config import CLASSIFIER_PRESETS, EncoderClassifierConfig
from stage4_transformer.model import EncoderClassifier, Parts

STAGE = "stage4_transformer"


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, EncoderClassifierConfig, CLASSIFIER_PRESETS, argv, module=f"{STAGE}.classify_train",
                    description="Classify texts with a Transformer encoder.")
    cfg = run.cfg
    data = load_word_data(cfg, [BOS_ID] if cfg.pool == "first" else [])  # <bos> first: the summary position
    model = EncoderClassifier(cfg.model_config(len(data.vocab)), len(data.label_names), cfg.pool,
                              Parts(**run.yours)).to(run.device)  # the reference, your parts on top (--yours)
    model_name = f"Transformer encoder {cfg.n_enc_layers}L/{cfg.n_heads}H/{cfg.d_model}d over words, {cfg.pool} pool"
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, run.device, betas=(0.9, 0.98))  # the Transformer's betas
    return train_classifier(run, model, data, optimizer, model_name)


if __name__ == "__main__":
    run_main(main)
