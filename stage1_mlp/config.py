"""Stage 1 config: one frozen dataclass, every field a `--flag`, with named presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.classification_data import CLASSIFICATION_DATASETS, check_classification_dataset
from shared.cli import check
from shared.own_data import TextColumns
from shared.train import TrainConfig


@dataclass(frozen=True)
class MLPConfig(TrainConfig, TextColumns):
    dataset: str = field(default="sst2", metadata={
        "help": f"{', '.join(CLASSIFICATION_DATASETS)}, or your own: csv:PATH, json:PATH, parquet:PATH, hf:NAME"})
    ngrams: int = field(default=2, metadata={"help": "longest n-gram: 1 = words, 2 = + bigrams, 3 = + trigrams"})
    hash_buckets: int = field(default=1 << 18, metadata={"help": "embedding rows for the hashed n-grams (n >= 2)"})
    min_freq: int = field(default=1, metadata={"help": "words seen fewer times in train become <unk>"})
    lowercase: bool = True
    embed_dim: int = 64
    hidden_dim: int = 128
    num_layers: int = field(default=1, metadata={"help": "hidden layers of the MLP (0 = linear model on the bag)"})
    dropout: float = 0.3
    token_dropout: float = field(default=0.3, metadata={"help": "share of n-grams hidden per training text"})
    optimizer: Literal["adagrad", "adamw"] = field(
        default="adagrad", metadata={"help": "adagrad: sparse embedding updates (fast); adamw: dense"})
    embedding_bag: bool = field(default=True, metadata={"help": "fast path: fused nn.EmbeddingBag mean"})
    val_fraction: float = field(default=0.05, metadata={"help": "share of train held out for model selection"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_classification_dataset(self.dataset)
        check(1 <= self.ngrams <= 3, "--ngrams must be 1, 2 or 3")
        check(self.hash_buckets >= 1, "--hash_buckets must be at least 1")
        check(self.min_freq >= 1, "--min_freq must be at least 1")
        check(self.embed_dim >= 1 and self.hidden_dim >= 1, "--embed_dim and --hidden_dim must be positive")
        check(self.num_layers >= 0, "--num_layers must be >= 0")
        check(0 <= self.dropout < 1 and 0 <= self.token_dropout < 1, "--dropout and --token_dropout must be in [0, 1)")
        check(self.optimizer == "adamw" or self.weight_decay == 0,
              "--weight_decay needs --optimizer adamw (Adagrad's sparse updates cannot decay weights)")
        check(0 < self.val_fraction < 0.5, "--val_fraction must be in (0, 0.5)")


PRESETS: dict[str, dict] = {
    # Seconds on a laptop: for tests and for checking the pipeline end to end.
    "tiny": dict(preset="tiny", amp="off", max_steps=300, batch_size=32, embed_dim=16, hidden_dim=32, hash_buckets=4096,
                 lr=5e-2, eval_interval=100, log_interval=20),
    # The benchmark preset: each data set's target in under 3 minutes on 2 CPU cores. SST-2's 67k
    # phrases want a deep averaging network with heavy dropout; TREC's 5k questions want longer
    # n-grams ("how many", "what is the"), more epochs, no dropout and no hidden layer (a hidden
    # layer overfits them: exercise E1.4), and only 2% of train held out for validation.
    "cpu": dict(preset="cpu", amp="off", epochs=4, batch_size=64, lr=1e-2, ngrams=1, embed_dim=300, hidden_dim=300,
                num_layers=3, dropout=0.3, token_dropout=0.3,
                by_dataset={
                    "trec": dict(epochs=15, batch_size=32, lr=0.1, ngrams=3, embed_dim=128, num_layers=0,
                                 dropout=0.0, token_dropout=0.0, val_fraction=0.02),
                    "ag_news": dict(epochs=5, ngrams=2, embed_dim=64, hidden_dim=128, num_layers=1,
                                    dropout=0.1, token_dropout=0.1),
                    "sms_spam": dict(epochs=20, batch_size=32, ngrams=2, embed_dim=64, hidden_dim=128,
                                     num_layers=1, dropout=0.1, token_dropout=0.1),
                }),
}
# Same models; bigger batches suit a GPU.
PRESETS["gpu"] = {**PRESETS["cpu"], "preset": "gpu", "amp": "auto"}
