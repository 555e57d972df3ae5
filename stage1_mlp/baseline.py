"""The scikit-learn baseline on stage 1's split: `python -m stage1_mlp.baseline --dataset sst2`.

TF-IDF over word 1-2-grams + logistic regression, fitted on the same train split the MLP sees and
scored on the same held-out split; recorded as runs/stage1_mlp/<dataset>-tfidf-logreg/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.baseline import record_baseline
from shared.classification_data import check_classification_dataset, load_classification
from shared.cli import check, parse_config, run_main
from shared.own_data import TextColumns, dataset_slug
from shared.records import command_for
from stage1_mlp.config import PRESETS, MLPConfig
from stage1_mlp.train import STAGE


@dataclass(frozen=True)
class BaselineConfig(TextColumns):
    dataset: str = field(default="sst2", metadata={"help": "as stage1_mlp.train's --dataset"})
    ngrams: int = 2
    C: float = 10.0
    val_fraction: float = field(default=0.0, metadata={
        "help": "share of train held out (not fitted on); 0 = what the MLP's cpu preset holds out for this dataset"})
    seed: int = 1337
    out_dir: str = ""

    def __post_init__(self) -> None:
        check_classification_dataset(self.dataset)
        check(1 <= self.ngrams <= 3, "--ngrams must be 1, 2 or 3")
        check(self.C > 0, "--C must be positive")
        check(0 <= self.val_fraction < 0.5, "--val_fraction must be in [0, 0.5)")

    @property
    def held_out(self) -> float:
        """The MLP's split: what its cpu preset holds out for this dataset (2% of TREC, 5% of the others)."""
        mlp = parse_config(MLPConfig, PRESETS, ["--dataset", self.dataset, "--preset", "cpu"])
        return self.val_fraction or mlp.val_fraction


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(BaselineConfig, {}, argv, prog=f"python -m {STAGE}.baseline",
                       description="TF-IDF + logistic regression on the stage 1 split.")
    splits = load_classification(cfg.dataset, cfg.held_out, cfg.seed, cfg.text_column, cfg.label_column)
    run_dir = Path(cfg.out_dir or f"runs/{STAGE}/{dataset_slug(cfg.dataset)}-tfidf-logreg")
    record = record_baseline(STAGE, cfg.dataset, splits, run_dir, command_for(f"{STAGE}.baseline", argv),
                             cfg.ngrams, cfg.C)
    print(f"{cfg.dataset} TF-IDF + logistic regression: held-out accuracy {record['test_accuracy']:.4f}  "
          f"macro-F1 {record['test_f1']:.4f}  ({record['train_seconds']:.1f} s to fit)  -> {run_dir}")
    return record


if __name__ == "__main__":
    run_main(main)
