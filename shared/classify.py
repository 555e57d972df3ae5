"""Word-level text classification helpers for the recurrent (stage 2) and Transformer-encoder (stage 4)
classifiers: the same words, the same batching and the same scores, so their tables compare."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.batching import EpochBatches
from shared.classification_data import load_classification
from shared.course_data import LabeledTexts
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
    i is a pure function of i (shared.batching.EpochBatches), so a resumed run sees the same batches."""

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
def predict_proba(model: nn.Module, lengths: Sequence[int], inputs: Callable[[list[int]], tuple[torch.Tensor, ...]],
                  batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (N, classes) of any classifier (stages 1, 2, 4, 6) over N examples, in their order.

    lengths      each example's length: examples of similar length are batched together (less padding)
    inputs(idx)  the model's inputs for the examples idx, e.g. (right-padded ids (B, T),)
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    probs: torch.Tensor | None = None
    for first in range(0, len(order), batch_size):
        chunk = order[first:first + batch_size]
        logits = model(*(t.to(device) for t in inputs(chunk))).float()  # (b, classes)
        if probs is None:
            probs = torch.empty(len(order), logits.size(-1))
        probs[chunk] = F.softmax(logits, dim=-1).cpu()
    model.train(was_training)
    return probs if probs is not None else torch.empty(0, 0)


def classifier_scores(probs: torch.Tensor, labels: Sequence[int]) -> dict:
    """accuracy, macro-F1, confusion matrix and mean cross-entropy of class probabilities (N, classes)."""
    metrics = classification_metrics(labels, probs.argmax(-1).tolist(), probs.shape[-1])
    metrics["loss"] = float(F.nll_loss(probs.clamp_min(1e-12).log(), torch.tensor(labels)))
    return metrics


def word_probabilities(model: nn.Module, encoded: Sequence[Sequence[int]]) -> torch.Tensor:
    """predict_proba for a model mapping right-padded word ids (B, T) to logits (B, classes)."""
    return predict_proba(model, [len(ids) for ids in encoded], lambda idx: (pad_batch([encoded[i] for i in idx]),))


def score(model: nn.Module, encoded: Sequence[Sequence[int]], labels: Sequence[int]) -> dict:
    """classifier_scores of a word-id model on encoded texts."""
    return classifier_scores(word_probabilities(model, encoded), labels)


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


def validation_scorer(data: WordData) -> Callable[[nn.Module], dict[str, float]]:
    """The `evaluate` the training loop calls: loss and accuracy on the held-out part of train."""
    def evaluate(model: nn.Module) -> dict[str, float]:
        val = score(model, data.encoded["val"], data.splits["val"].labels)
        return {"val_loss": val["loss"], "val_accuracy": val["accuracy"]}
    return evaluate


def train_classifier(run, model: nn.Module, data: WordData, optimizer: torch.optim.Optimizer,
                     model_name: str) -> dict:
    """Train a word classifier of stage 2 or 4 (shared.train.train), then score its best checkpoint on val
    and test, write the run record and print the held-out scores."""
    from shared.checkpoint import load_checkpoint
    from shared.train import count_params, train

    cfg = run.cfg
    batch_at = PaddedBatches(data.encoded["train"], data.splits["train"].labels, cfg.batch_size, cfg.seed, run.device)
    print(f"{run.stage}: {model_name} on {cfg.dataset} ({data.sizes()}), {count_params(model):,} parameters, "
          f"device {run.device}, run {run.dir}")

    def loss_fn(m, batch):
        ids, labels = batch  # (B, T), (B,)
        return F.cross_entropy(m(ids), labels), len(labels)

    extra = {"vocab": data.vocab.to_json(), "label_names": data.label_names, "stage": run.stage}
    result = train(model, optimizer, run, batch_at=batch_at, loss_fn=loss_fn, evaluate=validation_scorer(data),
                   steps_per_epoch=batch_at.steps_per_epoch, extra_state=extra, select_by="val_accuracy",
                   higher_is_better=True)
    model.load_state_dict(load_checkpoint(result.best_path)["model"])
    test = score(model, data.encoded["test"], data.splits["test"].labels)
    val = score(model, data.encoded["val"], data.splits["val"].labels)
    record = run.record(result, task="classification", model_name=model_name, params=count_params(model),
                        trainable_params=count_params(model), val_accuracy=val["accuracy"],
                        test_accuracy=test["accuracy"], test_f1=test["f1"], test_loss=test["loss"],
                        test_confusion_matrix=test["confusion_matrix"])
    print(f"{cfg.dataset} held-out: accuracy {test['accuracy']:.4f}  macro-F1 {test['f1']:.4f}  (val accuracy "
          f"{val['accuracy']:.4f}; {result.train_seconds:.1f} s of training)  -> {run.dir}")
    return record
