"""Stage 3 config: the shared translation flags plus the GRU encoder-decoder's shape, with presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.cli import check
from shared.translation import TranslationConfig


@dataclass(frozen=True)
class Seq2SeqTrainConfig(TranslationConfig):
    attention_type: Literal["bahdanau", "luong", "none"] = field(
        default="bahdanau", metadata={"help": "additive (Bahdanau), multiplicative (Luong), or none (a fixed summary)"})
    embed_dim: int = 256
    enc_hidden: int = field(default=512, metadata={"help": "GRU units per encoder direction"})
    dec_hidden: int = 512
    attn_dim: int = field(default=512, metadata={"help": "hidden size of the additive attention's MLP"})
    dropout: float = 0.3
    teacher_forcing: float = field(
        default=1.0, metadata={"help": "probability of feeding the true previous token (else the model's guess)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(min(self.embed_dim, self.enc_hidden, self.dec_hidden, self.attn_dim) >= 1,
              "--embed_dim, --enc_hidden, --dec_hidden and --attn_dim must be positive")
        check(0 <= self.dropout < 1, "--dropout must be in [0, 1)")
        check(0 <= self.teacher_forcing <= 1, "--teacher_forcing must be in [0, 1]")

    def run_dir(self, stage: str) -> Path:
        path = super().run_dir(stage)
        if self.out_dir or self.run_name or self.attention_type == "bahdanau":
            return path
        return path.with_name(f"{path.name}-{self.attention_type}")


PRESETS: dict[str, dict] = {
    # Seconds: tests and notebooks.
    "tiny": dict(preset="tiny", embed_dim=32, enc_hidden=32, dec_hidden=32, attn_dim=32, dropout=0.0,
                 max_train_pairs=500, epochs=2, batch_size=32, lr=3e-3, log_interval=5, max_len=20, eval_pairs=100,
                 beam_size=3, max_decode_len=25),
    # Fits the 30-minute budget on 2 CPU cores (see the README for the measured numbers).
    "cpu": dict(preset="cpu", embed_dim=128, enc_hidden=256, dec_hidden=256, attn_dim=256, dropout=0.3,
                epochs=3, batch_size=64, lr=2e-3, warmup_steps=100, log_interval=50, max_len=40),
    # The published anchor's shape (bentrevett/pytorch-seq2seq notebook 3: emb 256, 512 units, 20.5M
    # parameters on de-en), trained longer with a cosine schedule.
    "gpu": dict(preset="gpu", epochs=15, batch_size=128, lr=1e-3, warmup_steps=200, dropout=0.5,
                log_interval=50),
}
