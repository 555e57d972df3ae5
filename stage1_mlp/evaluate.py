"""Evaluate a trained stage 1 model: `python -m stage1_mlp.evaluate --model_path runs/stage1_mlp/sst2-cpu/best.pt`.

Prints accuracy, macro-F1 and the confusion matrix of each split, and the latency in ms per sample.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from shared.checkpoint import load_checkpoint
from shared.cli import UserError, check, config_from_dict, parse_config, run_main
from shared.devices import resolve_device
from shared.metrics import format_confusion
from shared.tokenizers import pad_batch
from stage1_mlp.config import MLPConfig
from stage1_mlp.data import NgramFeaturizer
from stage1_mlp.train import STAGE, build_model, prepare, score


@dataclass(frozen=True)
class EvalConfig:
    model_path: str = field(default="", metadata={"help": "a best.pt/last.pt checkpoint, or its run folder"})
    split: Literal["test", "val", "train", "all"] = "test"
    device: Literal["auto", "cpu", "cuda", "mps"] = "cpu"
    latency_samples: int = field(default=200, metadata={"help": "texts timed one by one for ms/sample"})

    def __post_init__(self) -> None:
        check(bool(self.model_path), "--model_path is required (a checkpoint written by stage1_mlp.train)")
        check(self.latency_samples >= 0, "--latency_samples must be >= 0")


def load_model(path: str, device: torch.device):
    """(model, its MLPConfig, featurizer, label names) from a checkpoint written by train."""
    state = load_checkpoint(path, required=("model", "config", "featurizer", "label_names"))
    cfg = config_from_dict(MLPConfig, state["config"])
    featurizer = NgramFeaturizer.from_json(state["featurizer"])
    model = build_model(cfg, featurizer.num_embeddings, len(state["label_names"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise UserError(f"checkpoint {path} does not match the stage 1 model; retrain it.") from None
    return model.to(device).eval(), cfg, featurizer, state["label_names"]


@torch.no_grad()
def latency_ms(model, encoded: Sequence[Sequence[int]], n: int) -> float:
    """Mean wall time to classify one text at batch size 1."""
    device = next(model.parameters()).device
    items = [pad_batch([ids]).to(device) for ids in encoded[:n]]
    if not items:
        return float("nan")
    model(items[0])  # warm-up
    start = time.perf_counter()
    for ids in items:
        model(ids).argmax(-1).item()
    return (time.perf_counter() - start) * 1000 / len(items)


@torch.no_grad()
def top_ngrams(model, featurizer: NgramFeaturizer, texts: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]:
    """For each class, the k n-grams (seen in `texts`) whose one-item bag the model scores highest.

    Feeding a single n-gram through the whole model shows what it has learned each feature means,
    for a linear bag model and an MLP alike.
    """
    grams = sorted({g for t in texts for g in featurizer.features(t)})
    ids = [featurizer.encode_feature(g) for g in grams]
    device = next(model.parameters()).device
    logits = torch.cat([model(torch.tensor(ids[i:i + 4096], device=device).unsqueeze(1)).float().cpu()
                        for i in range(0, len(ids), 4096)])  # (G, classes)
    scores = logits.log_softmax(-1)  # (G, classes)
    return [[(grams[i], float(scores[i, c])) for i in scores[:, c].topk(min(k, len(grams))).indices.tolist()]
            for c in range(scores.shape[1])]


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_config(EvalConfig, {}, argv, prog=f"python -m {STAGE}.evaluate",
                        description="Evaluate a trained stage 1 classifier.")
    device = resolve_device(args.device)
    model, cfg, featurizer, names = load_model(args.model_path, device)
    data = prepare(cfg, featurizer)
    results = {}
    for split in (["train", "val", "test"] if args.split == "all" else [args.split]):
        metrics = score(model, data.encoded[split], data.splits[split].labels)
        results[split] = metrics
        print(f"{cfg.dataset} {split} ({len(data.encoded[split])}): accuracy {metrics['accuracy']:.4f}  "
              f"macro-F1 {metrics['f1']:.4f}  loss {metrics['loss']:.4f}")
        print(format_confusion(metrics["confusion_matrix"], names))
    ms = latency_ms(model, data.encoded["test"], args.latency_samples)
    results["ms_per_sample"] = ms
    print(f"latency: {ms:.3f} ms per sample (batch size 1, {device})")
    print(json.dumps({k: {m: v for m, v in r.items() if m != "confusion_matrix"} if isinstance(r, dict) else r
                      for k, r in results.items()}))
    return results


if __name__ == "__main__":
    run_main(main)

