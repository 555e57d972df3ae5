"""Classify texts with stage 2's recurrent layers: `python -m stage2_rnn_lstm.classify_train --dataset sst2`.

The same data sets and splits as stage 1 (and stage 6): the words of each text, in order, through an
LSTM (or `--model_type gru|rnn`), pooled over the words (`--pool max|mean|last`) into one vector and
classified. Stage 1's bag of n-grams cannot tell "not good, just bad" from "not bad, just good"; a
model that reads in order can. Writes runs/stage2_rnn_lstm/<dataset>-classify-<cell>-<preset>/.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.classify import load_word_data, train_classifier
from shared.cli import run_main
from shared.run import Run
from shared.train import make_adamw
from stage2_rnn_lstm.config import CLASSIFIER_PRESETS, ClassifierTrainConfig
from stage2_rnn_lstm.model import Parts, RecurrentClassifier

STAGE = "stage2_rnn_lstm"


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, ClassifierTrainConfig, CLASSIFIER_PRESETS, argv, module=f"{STAGE}.classify_train",
                    description="Classify texts with a recurrent network reading the words in order.")
    cfg = run.cfg
    data = load_word_data(cfg)
    model = RecurrentClassifier(cfg.model_config(len(data.vocab)), len(data.label_names), cfg.pool,
                                cfg.bidirectional, Parts(**run.yours)).to(run.device)
    reads = "both ways" if cfg.bidirectional else "in order"
    model_name = f"{cfg.model_type.upper()} {cfg.num_layers}x{cfg.hidden_size} over words {reads}, {cfg.pool} pool"
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, run.device)
    return train_classifier(run, model, data, optimizer, model_name)


if __name__ == "__main__":
    run_main(main)
