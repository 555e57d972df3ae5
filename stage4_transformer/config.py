"""Stage 4 config: the shared translation flags plus the Transformer's shape, with presets."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.cli import check
from shared.translation import TranslationConfig
from stage4_transformer.model import TransformerConfig


@dataclass(frozen=True)
class TransformerTrainConfig(TransformerConfig, TranslationConfig):
    """The translation flags and the model's shape (TransformerConfig, inherited: one definition)."""

    average_last: int = field(default=1, metadata={
        "help": "average the weights of the last N evaluations (checkpoint averaging); 1 = off"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(min(self.d_model, self.n_heads, self.n_enc_layers, self.n_dec_layers, self.d_ff) >= 1,
              "--d_model, --n_heads, --n_enc_layers, --n_dec_layers and --d_ff must be positive")
        check(self.d_model % self.n_heads == 0, f"--d_model ({self.d_model}) must be divisible by --n_heads "
                                                f"({self.n_heads})")
        check(0 <= self.dropout < 1, "--dropout must be in [0, 1)")
        check(max(self.max_len, self.max_decode_len) + 2 <= self.max_positions,
              f"--max_len and --max_decode_len must be at most --max_positions - 2 ({self.max_positions - 2}): "
              f"the position table has {self.max_positions} rows")
        check(self.average_last >= 1, "--average_last must be at least 1")


# The Transformer's recipe: Adam betas (0.9, 0.98), warmup then 1/sqrt(step), label smoothing 0.1.
_RECIPE = dict(lr_schedule="inverse_sqrt", label_smoothing=0.1, weight_decay=0.0, grad_clip=1.0)

PRESETS: dict[str, dict] = {
    # Seconds: tests and notebooks.
    "tiny": dict(preset="tiny", d_model=64, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=128, dropout=0.0,
                 max_train_pairs=2000, max_steps=64, eval_interval=32, batch_size=32, log_interval=8,
                 max_len=20, eval_pairs=100, test_pairs=300, beam_size=3, max_decode_len=25,
                 **{**_RECIPE, "lr_schedule": "cosine", "lr": 1e-2, "warmup_steps": 10}),
    # The shape of the published anchor (3 + 3 layers, 256 dims, 8 heads, 9M parameters), given the
    # training time stage 3's cpu preset takes on 2 CPU cores (16 minutes): the 1/sqrt schedule has
    # no end to reach, so the clock can stop it anywhere.
    "cpu": dict(preset="cpu", epochs=30, max_minutes=16, batch_size=64, lr=1e-3, warmup_steps=400, log_interval=50,
                max_len=40, average_last=3, **_RECIPE),
    "gpu": dict(preset="gpu", epochs=25, batch_size=128, lr=1e-3, warmup_steps=800, log_interval=50,
                average_last=5, **_RECIPE),
}
