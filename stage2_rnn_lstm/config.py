"""Stage 2 config: recurrent language models, every field a flag, with named presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.classification_data import CLASSIFICATION_DATASETS, check_classification_dataset
from shared.cli import check, model_config
from shared.own_data import TextColumns, dataset_slug
from shared.train import TrainConfig
from stage2_rnn_lstm.model import RNNConfig


@dataclass(frozen=True)
class RNNTrainConfig(RNNConfig, TrainConfig):
    """The training flags (TrainConfig) and the model's shape (RNNConfig, inherited: one definition)."""

    dataset: Literal["tinyshakespeare", "wikitext2"] = field(
        default="tinyshakespeare", metadata={"help": "the presets pick WikiText-2 for --vocab_type word"})
    vocab_type: Literal["char", "word"] = "char"
    seq_len: int = field(default=100, metadata={"help": "steps of backpropagation through time per batch"})
    min_freq: int = field(default=1, metadata={"help": "word level: rarer training words become <unk>"})
    eval_streams: int = field(default=8, metadata={"help": "parallel streams the val/test text is cut into"})
    eval_tokens: int = field(
        default=0, metadata={"help": "periodic evals score the first N val tokens (0 = all)"})
    final_tokens: int = field(
        default=0, metadata={"help": "the final val/test scores read the first N tokens (0 = all; tiny: a sample)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.embed_dim >= 1 and self.hidden_size >= 1 and self.num_layers >= 1,
              "--embed_dim, --hidden_size and --num_layers must be at least 1")
        check(0 <= self.dropout < 1, "--dropout must be in [0, 1)")
        check(self.seq_len >= 1 and self.eval_streams >= 1, "--seq_len and --eval_streams must be at least 1")
        check(self.eval_tokens >= 0 and self.final_tokens >= 0, "--eval_tokens and --final_tokens must be >= 0")
        check(not self.tie_weights or self.embed_dim == self.hidden_size,
              f"--tie_weights needs --embed_dim equal to --hidden_size ({self.embed_dim} != {self.hidden_size})")
        check(self.min_freq >= 1, "--min_freq must be at least 1")

    def run_dir(self, stage: str) -> Path:
        """runs/<stage>/<dataset>-<model_type>-<preset>[-s<seed>] unless --out_dir or --run_name say otherwise."""
        if self.run_name or self.out_dir:
            return super().run_dir(stage)
        return Path("runs", stage, f"{self.dataset}-{self.model_type}-{self.preset}{self.name_suffix}")

    def model_config(self, vocab_size: int) -> RNNConfig:
        return model_config(RNNConfig, self, vocab_size=vocab_size)


PRESETS: dict[str, dict] = {
    "tiny": dict(preset="tiny", amp="off",
                 embed_dim=16, hidden_size=32, num_layers=1, dropout=0.0, seq_len=16, batch_size=8,
                 max_steps=60, lr=1e-2, eval_interval=30, log_interval=10, eval_streams=4, eval_tokens=4096,
                 final_tokens=20_000,
                 by_vocab_type={"word": dict(dataset="wikitext2")}),
    # char-rnn's 2 x 512 LSTM. On 2 CPU cores it trains at ~10k characters/s whatever the batch
    # (the matrix products run near the cores' peak), so 2600 steps of 32 x 100 (8.3 epochs) fit in 15 minutes.
    "cpu": dict(preset="cpu", amp="off",
                embed_dim=64, hidden_size=512, num_layers=2, dropout=0.2, seq_len=100, batch_size=32,
                max_steps=2600, lr=2e-3, min_lr_ratio=0.05, warmup_steps=100, grad_clip=1.0, eval_interval=325,
                log_interval=50,
                # --vocab_type word: WikiText-2 (unless --dataset says otherwise) and a word-sized model.
                by_vocab_type={"word": dict(dataset="wikitext2", embed_dim=256, hidden_size=256, num_layers=2,
                                            tie_weights=True, dropout=0.3, seq_len=35, batch_size=32, max_steps=0,
                                            epochs=1, lr=3e-3, eval_interval=500, eval_tokens=50_000)}),
}
PRESETS["gpu"] = {**PRESETS["cpu"], "preset": "gpu", "amp": "auto",
                  "hidden_size": 1024, "num_layers": 3, "batch_size": 128,
                  "dropout": 0.3, "max_steps": 0, "epochs": 30,
                  "by_vocab_type": {"word": dict(dataset="wikitext2", embed_dim=650, hidden_size=650, num_layers=2,
                                                 tie_weights=True, dropout=0.5, seq_len=35, batch_size=20,
                                                 max_steps=0, epochs=20, lr=2e-3, eval_interval=2000)}}


@dataclass(frozen=True)
class ClassifierTrainConfig(RNNConfig, TrainConfig, TextColumns):
    """`python -m stage2_rnn_lstm.classify_train`: the recurrent layers reading words, then a classifier.
    The same data sets and splits as stage 1 (shared.classification_data.load_classification), so the two compare."""

    dataset: str = field(default="sst2", metadata={
        "help": f"{', '.join(CLASSIFICATION_DATASETS)}, or your own: csv:PATH, json:PATH, parquet:PATH, hf:NAME"})
    pool: Literal["max", "mean", "last"] = field(default="max", metadata={
        "help": "how the outputs at every word become one vector: max, mean, or the last word's"})
    bidirectional: bool = field(default=False, metadata={
        "help": "a second recurrent stack reads each text backwards; the two outputs are joined at every word"})
    min_freq: int = field(default=1, metadata={"help": "training words seen fewer times become <unk>"})
    max_words: int = field(default=64, metadata={"help": "words kept per text (longer texts are cut)"})
    val_fraction: float = field(default=0.05, metadata={"help": "share of train held out for model selection"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_classification_dataset(self.dataset)
        check(self.embed_dim >= 1 and self.hidden_size >= 1 and self.num_layers >= 1,
              "--embed_dim, --hidden_size and --num_layers must be at least 1")
        check(0 <= self.dropout < 1, "--dropout must be in [0, 1)")
        check(self.min_freq >= 1 and self.max_words >= 1, "--min_freq and --max_words must be at least 1")
        check(not self.tie_weights, "--tie_weights is for the language model; a classifier has no output embedding")

    def run_dir(self, stage: str) -> Path:
        """runs/<stage>/<dataset>-classify-[bi]<model_type>-<preset>[-s<seed>]."""
        if self.run_name or self.out_dir:
            return super().run_dir(stage)
        cell = ("bi" if self.bidirectional else "") + self.model_type
        name = f"{dataset_slug(self.dataset)}-classify-{cell}-{self.preset}{self.name_suffix}"
        return Path("runs", stage, name)

    def model_config(self, vocab_size: int) -> RNNConfig:
        return model_config(RNNConfig, self, vocab_size=vocab_size)


CLASSIFIER_PRESETS: dict[str, dict] = {
    "tiny": dict(preset="tiny", amp="off", embed_dim=16, hidden_size=32, num_layers=1, dropout=0.0, batch_size=16,
                 max_steps=60, lr=1e-2, eval_interval=30, log_interval=10),
    # Tuned on SST-2 (the search and its scores: the stage README): read both ways, 3 epochs take ~9 minutes
    # on 2 cores; the small TREC and SMS spam read in order.
    "cpu": dict(preset="cpu", amp="off",
                embed_dim=128, hidden_size=256, num_layers=1, dropout=0.5, batch_size=64, epochs=3,
                lr=2e-3, warmup_steps=50, weight_decay=0.01, eval_interval=500, log_interval=50,
                by_dataset={"sst2": dict(bidirectional=True), "trec": dict(epochs=10, eval_interval=100),
                            "sms_spam": dict(epochs=10, batch_size=16, eval_interval=100)}),
}
CLASSIFIER_PRESETS["gpu"] = {**CLASSIFIER_PRESETS["cpu"], "preset": "gpu", "amp": "auto",
                             "embed_dim": 300, "hidden_size": 512,
                             "num_layers": 2, "epochs": 4}
