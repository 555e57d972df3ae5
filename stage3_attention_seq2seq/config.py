"""Stage 3 config: the shared translation flags plus the GRU encoder-decoder's shape, with presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.cli import check
from shared.translation import TranslationConfig
from stage3_attention_seq2seq.model import Seq2SeqConfig


@dataclass(frozen=True)
class Seq2SeqTrainConfig(Seq2SeqConfig, TranslationConfig):
    """The translation flags and the model's shape (Seq2SeqConfig, inherited: one definition)."""

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
    # Seconds: tests and notebooks (test BLEU about 1 after its 64 steps: enough to see it learn).
    "tiny": dict(preset="tiny", amp="off", embed_dim=32, enc_hidden=32, dec_hidden=32, attn_dim=32, dropout=0.0,
                 max_train_pairs=2000, max_steps=64, eval_interval=32, batch_size=32, lr=1e-2, log_interval=8,
                 max_len=20, eval_pairs=100, test_pairs=300, beam_size=3, max_decode_len=25),
    # Fits the 30-minute budget on 2 CPU cores (see the README for the measured numbers).
    "cpu": dict(preset="cpu", amp="off", embed_dim=128, enc_hidden=256, dec_hidden=256, attn_dim=256, dropout=0.3,
                epochs=3, batch_size=64, lr=2e-3, warmup_steps=100, log_interval=50, max_len=40),
    # The published anchor's shape (bentrevett/pytorch-seq2seq notebook 3: emb 256, 512 units, 20.5M
    # parameters on de-en), trained longer with a cosine schedule.
    "gpu": dict(preset="gpu", epochs=15, batch_size=128, lr=1e-3, warmup_steps=200, dropout=0.5,
                log_interval=50),
}
