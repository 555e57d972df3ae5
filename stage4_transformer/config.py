"""Stage 4 config: the shared translation flags plus the Transformer's shape, with presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.classification_data import CLASSIFICATION_DATASETS, check_classification_dataset
from shared.cli import check, model_config
from shared.own_data import TextColumns, dataset_slug
from shared.train import TrainConfig
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
    "tiny": dict(preset="tiny", amp="off", d_model=64, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=128, dropout=0.0,
                 max_train_pairs=2000, max_steps=64, eval_interval=32, batch_size=32, log_interval=8,
                 max_len=20, eval_pairs=100, test_pairs=300, beam_size=3, max_decode_len=25,
                 **{**_RECIPE, "lr_schedule": "cosine", "lr": 1e-2, "warmup_steps": 10}),
    # The shape of the published anchor (3 + 3 layers, 256 dims, 8 heads, 7M parameters) in the time
    # stage 3's cpu preset trains (3 epochs): a Transformer step is faster on 2 cores (bench/
    # translation_step_time.py), so 4.5 epochs fit in it (2,043 steps of 454 a Multi30k epoch); a
    # cosine schedule that ends there, so the last steps anneal (1/sqrt, stopped by a clock, never did);
    # the last 3 half-epoch checkpoints averaged if that wins on validation. The search: the stage README.
    "cpu": dict(preset="cpu", amp="off", max_steps=2043, batch_size=64, lr=1e-3, warmup_steps=200, log_interval=50,
                max_len=40, eval_interval=227, average_last=3, **{**_RECIPE, "lr_schedule": "cosine"}),
    "gpu": dict(preset="gpu", epochs=25, batch_size=128, lr=1e-3, warmup_steps=800, log_interval=50,
                average_last=5, **_RECIPE),
}


@dataclass(frozen=True)
class EncoderClassifierConfig(TransformerConfig, TrainConfig, TextColumns):
    """`python -m stage4_transformer.classify_train`: the encoder alone, classifying texts. The same data
    sets and splits as stage 1 (shared.classification_data.load_classification), so the tables compare."""

    dataset: str = field(default="sst2", metadata={
        "help": f"{', '.join(CLASSIFICATION_DATASETS)}, or your own: csv:PATH, json:PATH, parquet:PATH, hf:NAME"})
    pool: Literal["mean", "max", "first"] = field(default="mean", metadata={
        "help": "one vector from the outputs: mean or max over the words, or first (a <bos> summary position)"})
    min_freq: int = field(default=1, metadata={"help": "training words seen fewer times become <unk>"})
    max_words: int = field(default=64, metadata={"help": "words kept per text (longer texts are cut)"})
    val_fraction: float = field(default=0.05, metadata={"help": "share of train held out for model selection"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_classification_dataset(self.dataset)
        check(min(self.d_model, self.n_heads, self.n_enc_layers, self.d_ff) >= 1,
              "--d_model, --n_heads, --n_enc_layers and --d_ff must be positive")
        check(self.d_model % self.n_heads == 0, f"--d_model ({self.d_model}) must be divisible by --n_heads "
                                                f"({self.n_heads})")
        check(0 <= self.dropout < 1, "--dropout must be in [0, 1)")
        check(self.min_freq >= 1 and self.max_words >= 1, "--min_freq and --max_words must be at least 1")
        check(self.max_words + 1 <= self.max_positions,
              f"--max_words must be below --max_positions ({self.max_positions}): the position table's rows")

    def run_dir(self, stage: str) -> Path:
        """runs/<stage>/<dataset>-classify-<preset>[-s<seed>]."""
        if self.run_name or self.out_dir:
            return super().run_dir(stage)
        return Path("runs", stage, f"{dataset_slug(self.dataset)}-classify-{self.preset}{self.name_suffix}")

    def model_config(self, vocab_size: int) -> TransformerConfig:
        return model_config(TransformerConfig, self, src_vocab=vocab_size, tgt_vocab=1, n_dec_layers=0)


CLASSIFIER_PRESETS: dict[str, dict] = {
    "tiny": dict(preset="tiny", amp="off", d_model=32, n_heads=2, n_enc_layers=1, d_ff=64, dropout=0.0, batch_size=16,
                 max_steps=60, lr=3e-3, eval_interval=30, log_interval=10, warmup_steps=10),
    # Tuned on SST-2 (the search and its scores: the stage README): one epoch, evaluated every 250 steps;
    # a second epoch fits the training phrases better and the held-out sentences worse.
    "cpu": dict(preset="cpu", amp="off", d_model=128, n_heads=4, n_enc_layers=2, d_ff=256, dropout=0.1, batch_size=64,
                epochs=1, lr=1e-3, warmup_steps=200, weight_decay=0.01, eval_interval=250, log_interval=50,
                by_dataset={"trec": dict(epochs=10, eval_interval=0),
                            "sms_spam": dict(epochs=10, batch_size=16, eval_interval=0)}),
}
CLASSIFIER_PRESETS["gpu"] = {**CLASSIFIER_PRESETS["cpu"], "preset": "gpu", "amp": "auto", "d_model": 256, "n_heads": 8,
                             "n_enc_layers": 4, "d_ff": 1024, "epochs": 4}
