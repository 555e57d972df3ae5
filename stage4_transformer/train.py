"""Train the Transformer: `python -m stage4_transformer.train` (see --help).

    python -m stage4_transformer.train                       # Multi30k en -> fr, preset by device
    python -m stage4_transformer.train --src de --tgt en     # the direction with published numbers
    python -m stage4_transformer.train --no-norm_first       # the paper's post-LN

Writes runs/stage4_transformer/<dataset>-<src>-<tgt>-<preset>/ like stage 3, so `python -m
shared.report` puts both stages in one BLEU table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from shared.cli import parse_config, run_main
from shared.devices import resolve_device
from shared.train import make_adamw, seed_everything
from shared.translation_run import load_translation_checkpoint, prepare_data, train_translation
from stage4_transformer.config import PRESETS, TransformerTrainConfig
from stage4_transformer.model import Transformer, TransformerConfig

STAGE = "stage4_transformer"


def model_config(cfg: TransformerTrainConfig, src_vocab: int, tgt_vocab: int) -> TransformerConfig:
    return TransformerConfig(src_vocab, tgt_vocab, cfg.d_model, cfg.n_heads, cfg.n_enc_layers, cfg.n_dec_layers,
                             cfg.d_ff, cfg.dropout, cfg.norm_first, cfg.positions, 256, cfg.tie_embeddings,
                             cfg.attention)


def load_model(path: str, device):
    """(model, training config, (source vocab, target vocab)) from a stage 4 checkpoint or run folder."""
    return load_translation_checkpoint(path, TransformerTrainConfig,
                                       lambda d: Transformer(TransformerConfig(**d)), device)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(TransformerTrainConfig, PRESETS, argv, prog=f"python -m {STAGE}.train",
                       description="Train an encoder-decoder Transformer for translation.")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = prepare_data(cfg)
    mcfg = model_config(cfg, len(data.src_vocab), len(data.tgt_vocab))
    model = Transformer(mcfg).to(device)
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device, betas=(0.9, 0.98))
    layers = f"{cfg.n_enc_layers}+{cfg.n_dec_layers}L {cfg.d_model}d {'pre' if cfg.norm_first else 'post'}-LN"
    return train_translation(STAGE, cfg, model, data, asdict(mcfg), f"Transformer {layers}", argv,
                             optimizer=optimizer, average_last=cfg.average_last)


if __name__ == "__main__":
    run_main(main)
