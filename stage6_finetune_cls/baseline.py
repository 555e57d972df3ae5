"""The scikit-learn baseline on stage 6's split: `python -m stage6_finetune_cls.baseline`.

TF-IDF over word 1-2-grams + logistic regression on the same balanced SMS spam split the GPT is
finetuned on; recorded as runs/stage6_finetune_cls/tfidf-logreg/ so the report puts it in the table.
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
from stage6_finetune_cls.config import TASKS
from stage6_finetune_cls.train import STAGE


@dataclass(frozen=True)
class BaselineConfig(TextColumns):
    task: str = field(default="sms_spam", metadata={"help": "as stage6_finetune_cls.train's --task"})
    ngrams: int = 2
    C: float = 10.0
    out_dir: str = ""

    def __post_init__(self) -> None:
        check_classification_dataset(self.task, TASKS, "--task")
        check(1 <= self.ngrams <= 3, "--ngrams must be 1, 2 or 3")
        check(self.C > 0, "--C must be positive")


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(BaselineConfig, {}, argv, prog=f"python -m {STAGE}.baseline",
                       description="TF-IDF + logistic regression on a stage 6 task's split.")
    task = "" if cfg.task == "sms_spam" else dataset_slug(cfg.task) + "-"
    splits = load_classification(cfg.task, text_column=cfg.text_column, label_column=cfg.label_column)
    run_dir = Path(cfg.out_dir or f"runs/{STAGE}/{task}tfidf-logreg")
    record = record_baseline(STAGE, cfg.task, splits, run_dir,
                             command_for(f"{STAGE}.baseline", argv), cfg.ngrams, cfg.C)
    print(f"{cfg.task} TF-IDF + logistic regression: test accuracy {record['test_accuracy']:.4f}  "
          f"macro-F1 {record['test_f1']:.4f}  ({record['train_seconds']:.1f} s to fit)  -> {run_dir}")
    return record


if __name__ == "__main__":
    run_main(main)
