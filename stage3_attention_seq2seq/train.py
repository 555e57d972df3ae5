"""Train the attention encoder-decoder: `python -m stage3_attention_seq2seq.train` (see --help).

    python -m stage3_attention_seq2seq.train                           # Multi30k en -> fr, Bahdanau, preset by device
    python -m stage3_attention_seq2seq.train --attention_type none     # the same model without attention
    python -m stage3_attention_seq2seq.train --src de --tgt en         # the direction with published numbers
    python -m stage3_attention_seq2seq.train --dataset fra_eng         # Tatoeba English -> French

Writes runs/stage3_attention_seq2seq/<dataset>-<src>-<tgt>-<preset>[-<attention>]/ with checkpoints,
history, curves, test hypotheses (greedy and beam) and metrics.json (sacreBLEU, chrF, signature).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F

from shared.checkpoint import load_checkpoint
from shared.cli import model_config, run_main
from shared.run import Run
from shared.tokenizers import PAD_ID
from shared.train import make_adamw, train
from shared.translation import PairBatches
from shared.translation_run import (
    checkpoint_extras,
    describe,
    load_translation_checkpoint,
    prepare_data,
    score_and_record,
    score_split,
    teacher_forced_loss,
)
from stage3_attention_seq2seq.config import PRESETS, Seq2SeqTrainConfig
from stage3_attention_seq2seq.model import Parts, Seq2Seq, Seq2SeqConfig

STAGE = "stage3_attention_seq2seq"
MODEL_NAMES = {"bahdanau": "biGRU + Bahdanau attention", "luong": "biGRU + Luong attention",
               "none": "biGRU, no attention"}


def load_model(path: str, device):
    """(model, training config, (source vocab, target vocab)) from a stage 3 checkpoint or run folder."""
    return load_translation_checkpoint(path, Seq2SeqTrainConfig, lambda d: Seq2Seq(Seq2SeqConfig(**d)), device)


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, Seq2SeqTrainConfig, PRESETS, argv,
                    "Train a GRU encoder-decoder with attention for translation.")
    cfg = run.cfg
    data = prepare_data(cfg)
    mcfg = model_config(Seq2SeqConfig, cfg, src_vocab=len(data.src_vocab), tgt_vocab=len(data.tgt_vocab))
    model = Seq2Seq(mcfg, Parts(**run.yours)).to(run.device)  # your parts on top of the reference's (--yours)
    print(describe(STAGE, cfg, data, model, run.dir))
    batches = PairBatches(data, cfg.batch_size, cfg.seed, run.device)
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, run.device)

    def loss_fn(m, batch):
        src, src_len, tgt = batch  # (B, S), (B,), (B, T): tgt starts with <bos>, ends with <eos>
        # Teacher forcing: at each step the decoder is fed the true previous word (or, with probability
        # 1 - teacher_forcing, its own guess), and predicts the next: tgt[:, 1:].
        logits = m(src, src_len, tgt, teacher_forcing=cfg.teacher_forcing)  # (B, T-1, V)
        target = tgt[:, 1:]  # (B, T-1)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD_ID,
                               label_smoothing=cfg.label_smoothing)
        return loss, int((target != PAD_ID).sum())

    def evaluate(m) -> dict[str, float]:
        return {"val_loss": teacher_forced_loss(m, data, "val", cfg.eval_pairs),
                "val_bleu": score_split(m, data, "val", cfg, limit=cfg.eval_pairs)["bleu"]}

    result = train(model, optimizer, run, batch_at=batches, loss_fn=loss_fn, evaluate=evaluate,
                   steps_per_epoch=batches.steps_per_epoch, extra_state=checkpoint_extras(STAGE, mcfg, data),
                   item_name="tokens", select_by="val_bleu", higher_is_better=True)

    model.load_state_dict(load_checkpoint(result.best_path)["model"])  # the best by val BLEU
    return score_and_record(run, model, data, result, MODEL_NAMES[cfg.attention_type])


if __name__ == "__main__":
    run_main(main)
