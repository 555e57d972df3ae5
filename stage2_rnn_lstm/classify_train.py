"""Classify texts with stage 2's recurrent layers: `python -m stage2_rnn_lstm.classify_train --dataset sst2`.

The same data sets and splits as stage 1 (and stage 6): the words of each text, in order, through an
LSTM (or `--model_type gru|rnn`), pooled over the words (`--pool max|mean|last`) into one vector and
classified. Stage 1's bag of n-grams cannot tell "not good, just bad" from "not bad, just good"; a
model that reads in order can. Writes runs/stage2_rnn_lstm/<dataset>-classify-<cell>-<preset>/.
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
from shared.train import count_params, make_adamw, seed_everything, train
from stage2_rnn_lstm.config import CLASSIFIER_PRESETS, ClassifierTrainConfig
from stage2_rnn_lstm.model import RecurrentClassifier

STAGE = "stage2_rnn_lstm"


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(ClassifierTrainConfig, CLASSIFIER_PRESETS, argv, prog=f"python -m {STAGE}.classify_train",
                       description="Classify texts with a recurrent network reading the words in order.")
    run_dir = cfg.checked_run_dir(STAGE)
    cfg, yours = with_yours(cfg, STAGE)  # --yours: your cells from yours.py
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = load_word_data(cfg)
    model = RecurrentClassifier(cfg.model_config(len(data.vocab)), len(data.label_names), cfg.pool,
                                cfg.bidirectional).to(device)
    reads = "both ways" if cfg.bidirectional else "in order"
    model_name = f"{cfg.model_type.upper()} {cfg.num_layers}x{cfg.hidden_size} over words {reads}, {cfg.pool} pool"
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device)
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
