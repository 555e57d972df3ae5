"""Finetune a stage 5 GPT to classify SMS spam: `python -m stage6_finetune_cls.train` (see --help).

    python -m stage6_finetune_cls.train                                  # pretrained, last block trained
    python -m stage6_finetune_cls.train --trainable lora                 # low-rank adapters only
    python -m stage6_finetune_cls.train --init_from random --trainable all   # the no-pretraining ablation
    python -m stage6_finetune_cls.train --init_from path/to/hf-gpt2      # the real GPT-2 124M, if you have it

Writes runs/stage6_finetune_cls/<init>-<trainable>-<preset>/ (config, history, curves, checkpoints,
metrics.json) and prints the test accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from shared.check import with_yours
from shared.checkpoint import load_checkpoint
from shared.cli import UserError, parse_config, run_main
from shared.devices import resolve_device
from shared.metrics import classification_metrics
from shared.records import command_for, write_metrics
from shared.train import count_params, make_adamw, seed_everything, train
from stage5_gpt.data import Tokenizer
from stage5_gpt.hf import is_hf_folder
from stage5_gpt.model import GPT, GPTConfig
from stage5_gpt.train import load_model as load_gpt
from stage6_finetune_cls.config import DEFAULT_PRETRAINED, PRESETS, PRETRAIN_COMMAND, FinetuneConfig
from stage6_finetune_cls.data import EncodedSplit, ShuffledBatches, load_encoded
from stage6_finetune_cls.model import GPTClassifier, merge_lora, set_trainable, trainable_parameters

STAGE = "stage6_finetune_cls"
TRAIN_SCORED = 4000  # training texts scored at the end (all of SMS spam's 1,045; a sample of SST-2's)


def pretrained_gpt(cfg: FinetuneConfig) -> tuple[GPT, Tokenizer, str]:
    """The GPT to start from, its tokenizer, and a description of where it came from."""
    source = DEFAULT_PRETRAINED if cfg.init_from == "pretrained" else cfg.init_from
    if cfg.init_from == "random":
        source = DEFAULT_PRETRAINED if Path(DEFAULT_PRETRAINED, "best.pt").exists() else ""
    if cfg.init_from == "pretrained" and not Path(source).exists():
        raise UserError(f"no pretrained stage 5 model at {source}; train it first with `make pretrain` "
                        f"({PRETRAIN_COMMAND}, ~30 min on CPU), or pass --init_from random, a stage 5 run "
                        f"folder, or a Hugging Face GPT-2 folder.")
    if source and not (is_hf_folder(source) or Path(source).exists()):
        raise UserError(f"--init_from {source} does not exist; pass pretrained, random, a stage 5 run folder "
                        f"or checkpoint, or a Hugging Face GPT-2 folder.")
    if source:
        gpt, tokenizer, _ = load_gpt(source, dropout=cfg.dropout)
    else:  # random and no pretrained model to copy the shape from: the stage 5 cpu shape
        n_layer, n_head, n_embd, block_size = (int(p) for p in cfg.random_shape.split(","))
        gpt = GPT(GPTConfig(vocab_size=50304, block_size=block_size, n_layer=n_layer, n_head=n_head,
                            n_embd=n_embd, dropout=cfg.dropout))
        tokenizer = Tokenizer("gpt2")
    if cfg.init_from == "random":  # the same shape, weights drawn afresh: what pretraining is worth
        gpt = GPT(GPTConfig(**{**asdict(gpt.cfg), "dropout": cfg.dropout}))
        return gpt, tokenizer, "random init"
    return gpt, tokenizer, source


def build_classifier(model_config: dict, trainable: str, lora_rank: int, lora_alpha: float,
                     num_classes: int) -> GPTClassifier:
    """The classifier's structure (what a checkpoint's state dict is loaded into)."""
    model = GPTClassifier(GPT(GPTConfig(**model_config)), num_classes)
    set_trainable(model, trainable, lora_rank, lora_alpha)
    return model


@torch.no_grad()
def predict_proba(model: GPTClassifier, split: EncodedSplit, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities (N, classes)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(split), batch_size):
        lengths = split.lengths[i:i + batch_size]
        ids = split.ids[i:i + batch_size, :int(lengths.max())]  # (B, T)
        out.append(F.softmax(model(ids.to(device), lengths.to(device)).float(), dim=-1).cpu())
    model.train(was_training)
    return torch.cat(out)


def score(model: GPTClassifier, split: EncodedSplit) -> dict:
    probs = predict_proba(model, split)
    metrics = classification_metrics(split.labels.tolist(), probs.argmax(-1).tolist(), probs.shape[-1])
    metrics["loss"] = float(F.nll_loss(probs.clamp_min(1e-12).log(), split.labels))
    return metrics


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(FinetuneConfig, PRESETS, argv, prog=f"python -m {STAGE}.train",
                       description="Finetune a stage 5 GPT as a classifier (SMS spam or SST-2 sentiment).")
    run_dir = cfg.checked_run_dir(STAGE)  # a run already there is refused now, not after the data is ready
    cfg, yours = with_yours(cfg, STAGE)  # --yours: your parts from yours.py swapped in
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    gpt, tokenizer, source = pretrained_gpt(cfg)
    data, label_names, max_length = load_encoded(tokenizer, gpt.cfg.block_size, cfg.max_length, cfg.task,
                                                 cfg.text_column, cfg.label_column)
    seed_everything(cfg.seed)  # the head and adapters start the same whatever was loaded before
    model = GPTClassifier(gpt, len(label_names))
    set_trainable(model, cfg.trainable, cfg.lora_rank, cfg.lora_alpha)
    model.to(device)
    n_trainable = trainable_parameters(model)
    print(f"{STAGE}: {source}, {gpt.cfg.n_layer} layers x {gpt.cfg.n_embd} dims; trainable {cfg.trainable}: "
          f"{n_trainable:,} of {count_params(model):,} parameters; {len(data['train'])} train / "
          f"{len(data['val'])} val / {len(data['test'])} test {cfg.task} texts of <= {max_length} tokens; "
          f"device {device}; run {run_dir}")

    batches = ShuffledBatches(data["train"], cfg.batch_size, cfg.seed, device)

    def loss_fn(m, batch):
        ids, lengths, labels = batch
        return F.cross_entropy(m(ids, lengths), labels), len(labels)

    def evaluate(m) -> dict[str, float]:
        val = score(m, data["val"])
        return {"val_loss": val["loss"], "val_accuracy": val["accuracy"]}

    extra = {"model_config": asdict(gpt.cfg), "tokenizer": tokenizer.to_json(), "label_names": label_names,
             "max_length": max_length, "stage": STAGE}
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device)
    started = time.perf_counter()
    result = train(model, cfg, batch_at=batches, loss_fn=loss_fn, evaluate=evaluate, run_dir=run_dir,
                   steps_per_epoch=batches.steps_per_epoch, extra_state=extra, optimizer=optimizer,
                   select_by="val_accuracy")

    model.load_state_dict(load_checkpoint(result.best_path)["model"])
    # Accuracy on the training texts shows over- or underfitting; a fixed sample of 4,000 tells that
    # as well as all 64k SST-2 phrases, in a fraction of the time.
    scores = {name: score(model, split.sample(TRAIN_SCORED) if name == "train" else split)
              for name, split in data.items()}
    if cfg.trainable == "lora":  # folding the adapters into the weights must not change a prediction
        before = predict_proba(model, data["test"])
        merge_lora(model)
        torch.testing.assert_close(predict_proba(model, data["test"]), before, rtol=0, atol=1e-4)
    init = "random init" if cfg.init_from == "random" else f"pretrained ({cfg.init_name})"
    record = write_metrics(run_dir, {
        "stage": STAGE, "yours": yours, "task": "classification", "model": f"GPT {init}, trains {cfg.trainable}",
        "dataset": cfg.dataset, "preset": cfg.preset, "seed": cfg.seed, "init_from": source,
        "trainable": cfg.trainable, "params": count_params(model), "trainable_params": n_trainable,
        "device": str(device), "steps": result.steps, "train_seconds": round(result.train_seconds, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "samples_per_sec": round(result.items_per_sec, 1), "max_length": max_length,
        **{f"{name}_accuracy": s["accuracy"] for name, s in scores.items()},
        "test_f1": scores["test"]["f1"], "test_loss": scores["test"]["loss"],
        "test_confusion_matrix": scores["test"]["confusion_matrix"], "interrupted": result.interrupted,
        "command": command_for(f"{STAGE}.train", argv),
    })
    print(f"{cfg.task} test: accuracy {scores['test']['accuracy']:.4f}  macro-F1 {scores['test']['f1']:.4f}  "
          f"(val {scores['val']['accuracy']:.4f}, train {scores['train']['accuracy']:.4f}; "
          f"{result.train_seconds:.1f} s of training)  -> {run_dir}")
    return record


if __name__ == "__main__":
    run_main(main)
