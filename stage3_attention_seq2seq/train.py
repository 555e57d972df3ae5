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
from dataclasses import asdict

from shared.cli import parse_config, run_main
from shared.devices import resolve_device
from shared.train import seed_everything
from shared.translation_run import load_translation_checkpoint, prepare_data, train_translation
from stage3_attention_seq2seq.config import PRESETS, Seq2SeqTrainConfig
from stage3_attention_seq2seq.model import Seq2Seq, Seq2SeqConfig

STAGE = "stage3_attention_seq2seq"


def model_config(cfg: Seq2SeqTrainConfig, src_vocab: int, tgt_vocab: int) -> Seq2SeqConfig:
    return Seq2SeqConfig(src_vocab, tgt_vocab, cfg.embed_dim, cfg.enc_hidden, cfg.dec_hidden, cfg.attn_dim,
                         cfg.dropout, cfg.attention_type)


def load_model(path: str, device):
    """(model, training config, (source vocab, target vocab)) from a stage 3 checkpoint or run folder."""
    return load_translation_checkpoint(path, Seq2SeqTrainConfig, lambda d: Seq2Seq(Seq2SeqConfig(**d)), device)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(Seq2SeqTrainConfig, PRESETS, argv, prog=f"python -m {STAGE}.train",
                       description="Train a GRU encoder-decoder with attention for translation.")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = prepare_data(cfg)
    mcfg = model_config(cfg, len(data.src_vocab), len(data.tgt_vocab))
    model = Seq2Seq(mcfg).to(device)
    name = {"bahdanau": "biGRU + Bahdanau attention", "luong": "biGRU + Luong attention",
            "none": "biGRU, no attention"}[cfg.attention_type]
    return train_translation(STAGE, cfg, model, data, asdict(mcfg), name, argv,
                             forward_options={"teacher_forcing": cfg.teacher_forcing})


if __name__ == "__main__":
    run_main(main)
