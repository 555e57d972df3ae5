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

from shared.checkpoint import load_checkpoint
from shared.classify import classifier_scores
from shared.classify import predict_proba as shared_predict_proba
from shared.cli import UserError, run_main
from shared.run import Run, count_params, seed_everything
from shared.train import make_adamw, train
from stage5_gpt.data import Tokenizer
from stage5_gpt.hf import is_hf_folder
from stage5_gpt.model import GPT, GPTConfig
from stage5_gpt.train import load_model as load_gpt
from stage6_finetune_cls.adapt import adapt_to_texts
from stage6_finetune_cls.config import DEFAULT_PRETRAINED, PRESETS, PRETRAIN_COMMAND, FinetuneConfig
from stage6_finetune_cls.data import EncodedSplit, ShuffledBatches, load_encoded
from stage6_finetune_cls.model import GPTClassifier, Parts, merge_lora, set_trainable, trainable_parameters

STAGE = "stage6_finetune_cls"
TRAIN_SCORED = 4000  # training texts scored at the end (all of SMS spam's 1,045; a sample of SST-2's)


def pretrained_gpt(cfg: FinetuneConfig) -> tuple[GPT, Tokenizer, str]:
    """The GPT to start from, its tokenizer, and a description of where it came from. With --init_from
    random, the shape comes from the flags alone: --random_shape pretrained copies the shape and tokenizer
    of the default pretrained model (and says how to get it when it is missing), never whatever is there."""
    if cfg.init_from == "random" and cfg.random_shape != "pretrained":  # a shape given: GPT-2's BPE
        n_layer, n_head, n_embd, block_size = (int(p) for p in cfg.random_shape.split(","))
        gpt = GPT(GPTConfig(vocab_size=50304, block_size=block_size, n_layer=n_layer, n_head=n_head,
                            n_embd=n_embd, dropout=cfg.dropout))
        tokenizer, source = Tokenizer("gpt2"), ""
    else:
        source = cfg.init_from if cfg.init_from not in ("pretrained", "random") else DEFAULT_PRETRAINED
        if source == DEFAULT_PRETRAINED and not Path(source, "best.pt").exists():
            how = f"train it first with `make pretrain` ({PRETRAIN_COMMAND}, ~30 min on CPU)"
            if cfg.init_from == "random":
                raise UserError(f"no pretrained stage 5 model at {source} to copy the shape of; {how}, or pass "
                                f"--random_shape n_layer,n_head,n_embd,block_size.")
            raise UserError(f"no pretrained stage 5 model at {source}; {how}, or pass --init_from random, a stage 5 "
                            f"run folder, or a Hugging Face GPT-2 folder.")
        if not (is_hf_folder(source) or Path(source).exists()):
            raise UserError(f"--init_from {source} does not exist; pass pretrained, random, a stage 5 run folder "
                            f"or checkpoint, or a Hugging Face GPT-2 folder.")
        gpt, tokenizer, _ = load_gpt(source, dropout=cfg.dropout)
        if tokenizer.kind == "char" and cfg.init_from != "random":  # it would finetune to near chance, silently
            raise UserError(f"{source} is a character-level stage 5 model: it reads one character at a time and "
                            f"has no tokens for a classifier's texts; start from a BPE model ({PRETRAIN_COMMAND}) "
                            f"or any stage 5 run trained with --tokenizer bpe or gpt2.")
    if cfg.init_from == "random":  # the same shape, weights drawn afresh: what pretraining is worth
        return GPT(GPTConfig(**{**asdict(gpt.cfg), "dropout": cfg.dropout})), tokenizer, "random init"
    return gpt, tokenizer, source


def build_classifier(model_config: dict, trainable: str, lora_rank: int, lora_alpha: float,
                     num_classes: int) -> GPTClassifier:
    """The classifier's structure (what a checkpoint's state dict is loaded into)."""
    model = GPTClassifier(GPT(GPTConfig(**model_config)), num_classes)
    set_trainable(model, trainable, lora_rank, lora_alpha)
    return model


def predict_proba(model: GPTClassifier, split: EncodedSplit, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities (N, classes)."""
    def inputs(idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = split.lengths[idx]  # (B,)
        return split.ids[idx, :int(lengths.max())], lengths  # (B, T), (B,)

    return shared_predict_proba(model, split.lengths.tolist(), inputs, batch_size)


def score(model: GPTClassifier, split: EncodedSplit) -> dict:
    return classifier_scores(predict_proba(model, split), split.labels.tolist())


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, FinetuneConfig, PRESETS, argv,
                    "Finetune a stage 5 GPT as a classifier (SMS spam or SST-2 sentiment).")
    cfg, device = run.cfg, run.device
    gpt, tokenizer, source = pretrained_gpt(cfg)
    data, label_names, max_length = load_encoded(tokenizer, gpt.cfg.block_size, cfg.max_length, cfg.task,
                                                 cfg.text_column, cfg.label_column)
    adapted: dict[str, float] = {}
    if cfg.adapt_steps and not run.resumed:  # resuming: the adapted weights come back with the checkpoint
        seed_everything(cfg.seed)
        adapted = adapt_to_texts(gpt.to(device), data["train"], data["val"], tokenizer, run)
    seed_everything(cfg.seed)  # the head and adapters start the same whatever was loaded before
    model = GPTClassifier(gpt, len(label_names), Parts(**run.yours))  # your parts on top of the reference's
    set_trainable(model, cfg.trainable, cfg.lora_rank, cfg.lora_alpha)
    model.to(run.device)
    n_trainable = trainable_parameters(model)
    print(f"{STAGE}: {source}, {gpt.cfg.n_layer} layers x {gpt.cfg.n_embd} dims; trainable {cfg.trainable}: "
          f"{n_trainable:,} of {count_params(model):,} parameters; {len(data['train'])} train / "
          f"{len(data['val'])} val / {len(data['test'])} test {cfg.task} texts of <= {max_length} tokens; "
          f"device {run.device}, {run.amp_note}; run {run.dir}")

    batches = ShuffledBatches(data["train"], cfg.batch_size, cfg.seed, device)

    def loss_fn(m, batch):
        ids, lengths, labels = batch  # (B, T), (B,), (B,)
        return F.cross_entropy(m(ids, lengths), labels), len(labels)

    def evaluate(m) -> dict[str, float]:
        val = score(m, data["val"])
        return {"val_loss": val["loss"], "val_accuracy": val["accuracy"]}

    extra = {"model_config": asdict(gpt.cfg), "tokenizer": tokenizer.to_json(), "label_names": label_names,
             "max_length": max_length, "stage": STAGE}
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device)
    started = time.perf_counter()
    result = train(model, optimizer, run, batch_at=batches, loss_fn=loss_fn, evaluate=evaluate,
                   steps_per_epoch=batches.steps_per_epoch, extra_state=extra, select_by="val_accuracy",
                   higher_is_better=True)

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
    if cfg.adapt_steps:
        init += f" + {cfg.adapt_steps} steps on the task's texts"
    shape = f"{gpt.cfg.n_layer}L/{gpt.cfg.n_head}H/{gpt.cfg.n_embd}d"
    record = run.record(result, task="classification", model_name=f"GPT {init}, trains {cfg.trainable}",
                        params=count_params(model), init_from=source, shape=shape, trainable=cfg.trainable,
                        trainable_params=n_trainable, wall_seconds=round(time.perf_counter() - started, 2),
                        max_length=max_length, **{f"{name}_accuracy": s["accuracy"] for name, s in scores.items()},
                        test_f1=scores["test"]["f1"], test_loss=scores["test"]["loss"],
                        test_confusion_matrix=scores["test"]["confusion_matrix"], **adapted)
    print(f"{cfg.task} test: accuracy {scores['test']['accuracy']:.4f}  macro-F1 {scores['test']['f1']:.4f}  "
          f"(val {scores['val']['accuracy']:.4f}, train {scores['train']['accuracy']:.4f}; "
          f"{result.train_seconds:.1f} s of training)  -> {run.dir}")
    return record


if __name__ == "__main__":
    run_main(main)
