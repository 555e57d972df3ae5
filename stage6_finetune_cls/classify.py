"""Classify a message: `python -m stage6_finetune_cls.classify "WINNER! Call 09061701461 to claim your prize"`.

Prints the label and its probability (`--checkpoint RUN` picks the model; default: the latest run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.checkpoint import latest_run
from shared.cli import check, first_positional_as, parse_config, run_main
from shared.course_data import LabeledTexts
from shared.devices import resolve_device
from stage6_finetune_cls.data import encode_split
from stage6_finetune_cls.evaluate import load_classifier
from stage6_finetune_cls.train import STAGE, predict_proba


@dataclass(frozen=True)
class ClassifyConfig:
    text: str = field(default="", metadata={"help": "the message (or give it positionally)"})
    checkpoint: str = field(default="", metadata={"help": "run folder or .pt; default: the latest run"})
    device: Literal["auto", "cpu", "cuda", "mps"] = "cpu"

    def __post_init__(self) -> None:
        check(bool(self.text.strip()), 'give a message to classify, e.g. classify "WINNER! Call 09061701461 now"')


def classify(model, tokenizer, names: list[str], max_length: int, texts: Sequence[str]) -> list[tuple[str, float]]:
    """(label, probability of that label) for each text."""
    split = encode_split(LabeledTexts(list(texts), [0] * len(texts), names), tokenizer, max_length)
    probs = predict_proba(model, split)  # (N, classes)
    best = probs.argmax(-1)
    return [(names[int(b)], float(p[b])) for b, p in zip(best, probs)]


def main(argv: Sequence[str] | None = None) -> tuple[str, float]:
    raw = first_positional_as("--text", argv, ClassifyConfig)  # the message first or after the flags
    args = parse_config(ClassifyConfig, {}, raw, prog=f"python -m {STAGE}.classify",
                        description="Classify one text with a finetuned model (ham or spam, or its sentiment).")
    device = resolve_device(args.device)  # first: a device this machine lacks fails at once
    source = Path(args.checkpoint) if args.checkpoint else latest_run(STAGE)
    model, tokenizer, names, max_length, _ = load_classifier(source, device)
    label, prob = classify(model, tokenizer, names, max_length, [args.text])[0]
    print(f"{label} ({prob:.1%})")
    return label, prob


if __name__ == "__main__":
    run_main(main)
