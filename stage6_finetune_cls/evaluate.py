"""Evaluate a finetuned classifier: `python -m stage6_finetune_cls.evaluate [--checkpoint RUN]`.

Accuracy, macro-F1 and the confusion matrix on train / val / test, and the misclassified test messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from shared.checkpoint import latest_run, load_checkpoint
from shared.cli import UserError, check, config_from_dict, parse_config, run_main
from shared.devices import resolve_device
from shared.metrics import format_confusion
from shared.records import write_results
from stage5_gpt.data import Tokenizer
from stage6_finetune_cls.config import FinetuneConfig
from stage6_finetune_cls.data import load_encoded
from stage6_finetune_cls.train import STAGE, build_classifier, predict_proba, score


def load_classifier(path: str | Path, device: torch.device | str = "cpu"):
    """(model, tokenizer, label names, max_length, training config) from a stage 6 checkpoint or run folder."""
    state = load_checkpoint(path, required=("model", "config", "model_config", "tokenizer", "label_names",
                                            "max_length"))
    cfg = config_from_dict(FinetuneConfig, {**state["config"], "resume": False})
    try:
        model = build_classifier(state["model_config"], cfg.trainable, cfg.lora_rank, cfg.lora_alpha,
                                 len(state["label_names"]))
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError):
        raise UserError(f"checkpoint {path} does not hold a stage 6 classifier of this version; "
                        f"train it again.") from None
    tokenizer = Tokenizer.from_json(state["tokenizer"])
    return model.to(device).eval(), tokenizer, state["label_names"], state["max_length"], cfg


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str = field(default="", metadata={"help": "run folder or .pt; default: the latest run"})
    split: Literal["train", "val", "test", "all"] = "all"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    show_errors: int = field(default=10, metadata={"help": "misclassified test messages to print"})

    def __post_init__(self) -> None:
        check(self.show_errors >= 0, "--show_errors must be >= 0")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_config(EvalConfig, {}, argv, prog=f"python -m {STAGE}.evaluate",
                        description="Accuracy, F1 and confusion matrices of a finetuned classifier.")
    device = resolve_device(args.device)  # first: a device this machine lacks fails at once
    source = Path(args.checkpoint) if args.checkpoint else latest_run(STAGE)
    model, tokenizer, names, max_length, train_cfg = load_classifier(source, device)
    data, _, _ = load_encoded(tokenizer, model.gpt.cfg.block_size, max_length, train_cfg.task, train_cfg.text_column,
                              train_cfg.label_column)
    results = {}
    for split in (["train", "val", "test"] if args.split == "all" else [args.split]):
        metrics = score(model, data[split])
        results[split] = metrics
        print(f"{train_cfg.task} {split} ({len(data[split])}): accuracy {metrics['accuracy']:.4f}  "
              f"macro-F1 {metrics['f1']:.4f}  loss {metrics['loss']:.4f}")
        print(format_confusion(metrics["confusion_matrix"], names))
    if args.show_errors and args.split in ("test", "all"):
        probs = predict_proba(model, data["test"])
        wrong = (probs.argmax(-1) != data["test"].labels).nonzero().flatten().tolist()
        print(f"\n{len(wrong)} misclassified test texts (true label, p({names[1]})):")
        for i in wrong[:args.show_errors]:
            true = names[int(data["test"].labels[i])]
            print(f"  {true:8s} {float(probs[i, 1]):.2f}  {data['test'].texts[i][:100]!r}")
    folder = source if source.is_dir() else source.parent
    print(json.dumps({k: {m: v for m, v in r.items() if m != "confusion_matrix"} for k, r in results.items()}))
    write_results(folder / "eval.json", results)
    return results


if __name__ == "__main__":
    run_main(main)
