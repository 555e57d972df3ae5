"""Train the Transformer: `python -m stage4_transformer.train` (see --help).

    python -m stage4_transformer.train                       # Multi30k en -> fr, preset by device
    python -m stage4_transformer.train --src de --tgt en     # the direction with published numbers
    python -m stage4_transformer.train --no-norm_first       # the paper's post-LN

Writes runs/stage4_transformer/<dataset>-<src>-<tgt>-<preset>/ like stage 3, so `python -m
shared.report` puts both stages in one BLEU table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from shared.checkpoint import load_checkpoint, save_checkpoint
from shared.cli import model_config, run_main
from shared.run import Run
from shared.tokenizers import PAD_ID
from shared.train import make_adamw, train
from shared.translation import PairBatches, TranslationData
from shared.translation_run import (
    checkpoint_extras,
    describe,
    load_translation_checkpoint,
    prepare_data,
    score_and_record,
    score_split,
    teacher_forced_loss,
)
from stage4_transformer.config import PRESETS, TransformerTrainConfig
from stage4_transformer.model import Parts, Transformer, TransformerConfig

STAGE = "stage4_transformer"


def load_model(path: str, device):
    """(model, training config, (source vocab, target vocab)) from a stage 4 checkpoint or run folder."""
    return load_translation_checkpoint(path, TransformerTrainConfig,
                                       lambda d: Transformer(TransformerConfig(**d)), device)


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, TransformerTrainConfig, PRESETS, argv,
                    "Train an encoder-decoder Transformer for translation.")
    cfg = run.cfg
    data = prepare_data(cfg)
    mcfg = model_config(TransformerConfig, cfg, src_vocab=len(data.src_vocab), tgt_vocab=len(data.tgt_vocab))
    model = Transformer(mcfg, Parts(**run.yours)).to(run.device)  # the reference, your parts on top (--yours)
    print(describe(STAGE, cfg, data, model, run.dir))
    batches = PairBatches(data, cfg.batch_size, cfg.seed, run.device)
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, run.device, betas=(0.9, 0.98))  # the paper's betas

    def loss_fn(m, batch):
        src, src_len, tgt = batch  # (B, S), (B,), (B, T): tgt starts with <bos>, ends with <eos>
        logits = m(src, src_len, tgt)  # (B, T-1, V): every position at once, the causal mask hides the future
        target = tgt[:, 1:]  # (B, T-1)
        # Label smoothing: e spread over all V words, so the right word's target is 1 - e + e/V.
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD_ID,
                               label_smoothing=cfg.label_smoothing)
        return loss, int((target != PAD_ID).sum())

    # The weights at the last --average_last evaluations, for checkpoint averaging at the end. They are
    # part of every checkpoint (extra_state), so a resumed run averages the same weights.
    recent: list[dict[str, torch.Tensor]] = run.resumed.get("recent_weights", []) if run.resumed else []

    def evaluate(m) -> dict[str, float]:
        if cfg.average_last > 1:
            recent.append({k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()})
            del recent[:-cfg.average_last]
        return {"val_loss": teacher_forced_loss(m, data, "val", cfg.eval_pairs),
                "val_bleu": score_split(m, data, "val", cfg, limit=cfg.eval_pairs)["bleu"]}

    extra = {**checkpoint_extras(STAGE, mcfg, data), "recent_weights": recent}
    result = train(model, optimizer, run, batch_at=batches, loss_fn=loss_fn, evaluate=evaluate,
                   steps_per_epoch=batches.steps_per_epoch, extra_state=extra, item_name="tokens",
                   select_by="val_bleu", higher_is_better=True)

    best = load_checkpoint(result.best_path)
    model.load_state_dict(best["model"])  # the best by val BLEU
    averaged = len(recent) > 1 and average_into_best(model, recent, best, result.best_path, data, cfg)
    layers = f"{cfg.n_enc_layers}+{cfg.n_dec_layers}L {cfg.d_model}d {'pre' if cfg.norm_first else 'post'}-LN"
    return score_and_record(run, model, data, result, f"Transformer {layers}",
                            checkpoint_average=len(recent) if averaged else 1)


def average_into_best(model: Transformer, states: Sequence[dict[str, torch.Tensor]], best: dict, best_path: Path,
                      data: TranslationData, cfg: TransformerTrainConfig) -> bool:
    """Checkpoint averaging ("Attention Is All You Need"): load the mean of `states` into the model if
    it beats the best checkpoint on val BLEU (and save it as best.pt); otherwise keep the best
    checkpoint's weights. Returns whether the average won."""
    device = next(model.parameters()).device
    best_bleu = score_split(model, data, "val", cfg)["bleu"]
    mean = {k: torch.stack([s[k].float() for s in states]).mean(0).to(states[-1][k].dtype) for k in states[-1]}
    model.load_state_dict({k: v.to(device) for k, v in mean.items()})
    avg_bleu = score_split(model, data, "val", cfg)["bleu"]
    print(f"checkpoint averaging: the mean of the last {len(states)} evaluations scores val BLEU {avg_bleu:.2f} "
          f"vs {best_bleu:.2f} for the best single one")
    if avg_bleu > best_bleu:
        save_checkpoint(best_path, {**best, "model": mean})
        return True
    model.load_state_dict(best["model"])
    return False


if __name__ == "__main__":
    run_main(main)
