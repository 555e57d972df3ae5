"""Classify texts with stage 4's encoder: `python -m stage4_transformer.classify_train --dataset sst2`.

The same data sets and splits as stage 1 (and stages 2 and 6): the words of each text, with their
positions, through the Transformer's encoder layers (every word attends to every other), pooled
(`--pool mean`, or `first`: a <bos> read as a summary token) and classified. No decoder: classifying
needs one vector per text, not a sequence out. Writes runs/stage4_transformer/<dataset>-classify-<preset>/.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F

from shared.check import with_yours
from shared.checkpoint import load_checkpoint
from shared.classify import PaddedBatches, load_word_data, record_classifier, validation_scorer
from shared.cli import parse_config, run_main
from shared.devices import resolve_device
from shared.records import command_for
from shared.tokenizers import BOS_ID
from shared.train import count_params, make_adamw, seed_everything, train
from stage4_transformer.config import CLASSIFIER_PRESETS, EncoderClassifierConfig
from stage4_transformer.model import EncoderClassifier

STAGE = "stage4_transformer"


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(EncoderClassifierConfig, CLASSIFIER_PRESETS, argv, prog=f"python -m {STAGE}.classify_train",
                       description="Classify texts with a Transformer encoder.")
    run_dir = cfg.checked_run_dir(STAGE)
    cfg, yours = with_yours(cfg, STAGE)  # --yours: your attention from yours.py
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = load_word_data(cfg, [BOS_ID] if cfg.pool == "first" else [])  # <bos> first: the summary position
    model = EncoderClassifier(cfg.model_config(len(data.vocab)), len(data.label_names), cfg.pool).to(device)
    model_name = f"Transformer encoder {cfg.n_enc_layers}L/{cfg.n_heads}H/{cfg.d_model}d over words, {cfg.pool} pool"
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device, betas=(0.9, 0.98))  # the Transformer's betas
    batch_at = PaddedBatches(data.encoded["train"], data.splits["train"].labels, cfg.batch_size, cfg.seed, device)
    print(f"{STAGE}: {model_name} on {cfg.dataset} ({data.sizes()}), {count_params(model):,} parameters, "
          f"device {device}, run {run_dir}")

    def loss_fn(m, batch):
        ids, labels = batch
        return F.cross_entropy(m(ids), labels), len(labels)

    evaluate = validation_scorer(data)

    extra = {"vocab": data.vocab.to_json(), "label_names": data.label_names, "stage": STAGE}
    result = train(model, cfg, batch_at=batch_at, loss_fn=loss_fn, evaluate=evaluate, run_dir=run_dir,
                   steps_per_epoch=batch_at.steps_per_epoch, extra_state=extra, optimizer=optimizer,
                   select_by="val_accuracy")
    model.load_state_dict(load_checkpoint(result.best_path)["model"])
    return record_classifier(STAGE, cfg, run_dir, model, data, result, model_name, yours,
                             command_for(f"{STAGE}.classify_train", argv))


if __name__ == "__main__":
    run_main(main)
