"""Word-level text classification helpers for the recurrent (stage 2) and Transformer-encoder (stage 4)
classifiers: the same words, the same batching and the same scores, so their tables compare."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.data import EpochBatches, LabeledTexts, load_classification
from shared.metrics import classification_metrics
from shared.tokenizers import UNK_ID, Vocab, pad_batch, word_tokenize


def build_word_vocab(texts: Sequence[str], min_freq: int) -> Vocab:
    """The training texts' words (lower-cased), those seen at least min_freq times, <pad> = 0 first."""
    return Vocab.build((word_tokenize(t) for t in texts), min_freq=min_freq)


def encode_words(texts: Sequence[str], vocab: Vocab, max_words: int, prefix: Sequence[int] = ()) -> list[list[int]]:
    """Word ids of each text, cut to max_words; an empty text reads as one <unk>. `prefix`: ids put first
    (the encoder classifier's <bos>, read as a summary token)."""
    return [[*prefix, *(vocab.encode(word_tokenize(t)[:max_words]) or [UNK_ID])] for t in texts]


class PaddedBatches:
    """Shuffled mini-batches of right-padded token ids (B, T) and their labels (B,), on the device; batch
    i is a pure function of i (shared.data.EpochBatches), so a resumed run sees the same batches."""

    def __init__(self, encoded: Sequence[Sequence[int]], labels: Sequence[int], batch_size: int, seed: int,
                 device: torch.device):
        self.encoded, self.labels, self.device = encoded, torch.tensor(labels), device
        self.order = EpochBatches(len(encoded), batch_size, seed)
        self.steps_per_epoch = self.order.steps_per_epoch

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.order.indices(i)
        ids = pad_batch([self.encoded[j] for j in idx.tolist()]).to(self.device)  # (B, T)
        return ids, self.labels[idx].to(self.device)  # (B, T), (B,)


@torch.no_grad()
def predict_proba(model: nn.Module, encoded: Sequence[Sequence[int]], batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (N, classes) from a model mapping right-padded ids (B, T) to logits (B, classes).
    Texts are sorted by length first, so each batch carries little padding."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    probs: torch.Tensor | None = None
    for first in range(0, len(order), batch_size):
        chunk = order[first:first + batch_size]
        logits = model(pad_batch([encoded[i] for i in chunk]).to(device)).float()  # (b, classes)
        if probs is None:
            probs = torch.empty(len(encoded), logits.size(-1))
        probs[chunk] = F.softmax(logits, dim=-1).cpu()
    model.train(was_training)
    return probs if probs is not None else torch.empty(0, 0)


def score(model: nn.Module, encoded: Sequence[Sequence[int]], labels: Sequence[int]) -> dict:
    """accuracy, macro-F1, confusion matrix and mean cross-entropy of the model on encoded texts."""
    probs = predict_proba(model, encoded)
    metrics = classification_metrics(labels, probs.argmax(-1).tolist(), probs.shape[-1])
    metrics["loss"] = float(F.nll_loss(probs.clamp_min(1e-12).log(), torch.tensor(labels)))
    return metrics


def validation_scorer(data: WordData) -> Callable[[nn.Module], dict[str, float]]:
    """The `evaluate` the training loop calls: loss and accuracy on the held-out part of train."""
    def evaluate(model: nn.Module) -> dict[str, float]:
        val = score(model, data.encoded["val"], data.splits["val"].labels)
        return {"val_loss": val["loss"], "val_accuracy": val["accuracy"]}
    return evaluate


@dataclass
class WordData:
    """A classification data set as word ids: the splits, the vocabulary built on train, the ids."""

    splits: dict[str, LabeledTexts]
    vocab: Vocab
    encoded: dict[str, list[list[int]]]

    @property
    def label_names(self) -> list[str]:
        return self.splits["train"].label_names

    def sizes(self) -> str:
        return (f"{len(self.encoded['train'])} train / {len(self.encoded['val'])} val / {len(self.encoded['test'])} "
                f"test, vocab {len(self.vocab):,}")


def load_word_data(cfg, prefix: Sequence[int] = ()) -> WordData:
    """cfg's data set (dataset, val_fraction, seed, text/label columns, min_freq, max_words) as word ids."""
    splits = load_classification(cfg.dataset, cfg.val_fraction, cfg.seed, cfg.text_column, cfg.label_column)
    vocab = build_word_vocab(splits["train"].texts, cfg.min_freq)
    encoded = {name: encode_words(split.texts, vocab, cfg.max_words, prefix) for name, split in splits.items()}
    return WordData(splits, vocab, encoded)


def record_classifier(stage: str, cfg, run_dir, model: nn.Module, data: WordData, result, model_name: str, yours,
                      command: str) -> dict:
    """Score the best checkpoint (already loaded into `model`) on val and test, write metrics.json, print."""
    from shared.records import write_metrics
    from shared.train import count_params

    test = score(model, data.encoded["test"], data.splits["test"].labels)
    val = score(model, data.encoded["val"], data.splits["val"].labels)
    record = write_metrics(run_dir, {
        "stage": stage, "yours": yours, "task": "classification", "model": model_name, "dataset": cfg.dataset,
        "preset": cfg.preset, "seed": cfg.seed, "params": count_params(model), "trainable_params": count_params(model),
        "device": str(next(model.parameters()).device), "steps": result.steps,
        "train_seconds": round(result.train_seconds, 2), "samples_per_sec": round(result.items_per_sec, 1),
        "val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"], "test_f1": test["f1"],
        "test_loss": test["loss"], "test_confusion_matrix": test["confusion_matrix"],
        "interrupted": result.interrupted, "command": command,
    })
    print(f"{cfg.dataset} held-out: accuracy {test['accuracy']:.4f}  macro-F1 {test['f1']:.4f}  (val accuracy "
          f"{val['accuracy']:.4f}; {result.train_seconds:.1f} s of training)  -> {run_dir}")
    return record
