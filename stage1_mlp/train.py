"""Train the stage 1 classifier: `python -m stage1_mlp.train --dataset sst2` (see --help for every flag).

Writes runs/stage1_mlp/<dataset>-<preset>/ (config, history, curves, checkpoints, metrics.json)
and prints the held-out accuracy and macro-F1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from shared.batching import EpochBatches
from shared.checkpoint import load_checkpoint
from shared.classification_data import load_classification
from shared.classify import classifier_scores
from shared.classify import predict_proba as predict_proba_of
from shared.cli import run_main
from shared.course_data import LabeledTexts
from shared.run import Run, count_params
from shared.tokenizers import pad_batch
from shared.train import make_adamw, train
from stage1_mlp.config import PRESETS, MLPConfig
from stage1_mlp.data import NgramFeaturizer
from stage1_mlp.model import BagOfNgramsMLP, Parts

STAGE = "stage1_mlp"


@dataclass
class Prepared:
    """Everything a run needs besides the model: the splits, their ids, and the featurizer."""

    splits: dict[str, LabeledTexts]
    encoded: dict[str, list[list[int]]]
    featurizer: NgramFeaturizer

    @property
    def label_names(self) -> list[str]:
        return self.splits["train"].label_names


def prepare(cfg: MLPConfig, featurizer: NgramFeaturizer | None = None, parts: Parts | None = None) -> Prepared:
    splits = load_classification(cfg.dataset, cfg.val_fraction, cfg.seed, cfg.text_column, cfg.label_column)
    featurizer = featurizer or NgramFeaturizer.fit(splits["train"].texts, cfg.ngrams, cfg.hash_buckets,
                                                   cfg.min_freq, cfg.lowercase, (parts or Parts()).bag_of_ngrams)
    encoded = {name: [featurizer.encode(t) for t in split.texts] for name, split in splits.items()}
    return Prepared(splits, encoded, featurizer)


def build_model(cfg: MLPConfig, num_embeddings: int, num_classes: int, parts: Parts | None = None) -> BagOfNgramsMLP:
    return BagOfNgramsMLP(num_embeddings, num_classes, cfg.embed_dim, cfg.hidden_dim, cfg.num_layers,
                          cfg.dropout, cfg.token_dropout, cfg.embedding_bag, sparse=cfg.optimizer == "adagrad",
                          parts=parts)


def build_optimizer(cfg: MLPConfig, model: BagOfNgramsMLP) -> torch.optim.Optimizer:
    if cfg.optimizer == "adagrad":  # accepts the sparse embedding gradient: only used rows are touched
        torch.sparse.check_sparse_tensor_invariants.disable()  # opt out explicitly (torch warns otherwise)
        return torch.optim.Adagrad(model.parameters(), lr=cfg.lr)
    return make_adamw(model, cfg.lr, cfg.weight_decay, next(model.parameters()).device)


def predict_proba(model: BagOfNgramsMLP, encoded: Sequence[Sequence[int]], batch_size: int = 512) -> torch.Tensor:
    """Class probabilities (N, classes) for already-encoded texts."""
    return predict_proba_of(model, [len(ids) for ids in encoded], lambda idx: (pad_batch([encoded[i] for i in idx]),),
                            batch_size)


def score(model: BagOfNgramsMLP, encoded: Sequence[Sequence[int]], labels: Sequence[int]) -> dict:
    return classifier_scores(predict_proba(model, encoded), labels)


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, MLPConfig, PRESETS, argv, "Train an MLP over bags of word n-grams.")
    cfg, device = run.cfg, run.device
    parts = Parts(**run.yours)  # the reference, with your parts on top under --yours
    data = prepare(cfg, parts=parts)
    train_ids, train_labels = data.encoded["train"], torch.tensor(data.splits["train"].labels)
    model = build_model(cfg, data.featurizer.num_embeddings, len(data.label_names), parts).to(device)
    print(f"{STAGE}: {cfg.dataset} ({len(train_ids)} train / {len(data.encoded['val'])} val / "
          f"{len(data.encoded['test'])} test), {count_params(model):,} parameters, device {device}, run {run.dir}")

    batches = EpochBatches(len(train_ids), cfg.batch_size, cfg.seed)

    def batch_at(i: int):
        idx = batches.indices(i)
        ids = pad_batch([train_ids[j] for j in idx.tolist()]).to(device)  # (B, T)
        return ids, train_labels[idx].to(device)  # (B, T), (B,)

    def loss_fn(m, batch):
        ids, labels = batch
        return F.cross_entropy(m(ids), labels), len(labels)

    def evaluate(m) -> dict[str, float]:
        val = score(m, data.encoded["val"], data.splits["val"].labels)
        return {"val_loss": val["loss"], "val_accuracy": val["accuracy"]}

    extra = {"featurizer": data.featurizer.to_json(), "label_names": data.label_names}
    result = train(model, build_optimizer(cfg, model), run, batch_at=batch_at, loss_fn=loss_fn, evaluate=evaluate,
                   steps_per_epoch=batches.steps_per_epoch, extra_state=extra, select_by="val_accuracy",
                   higher_is_better=True)

    model.load_state_dict(load_checkpoint(result.best_path)["model"])
    test = score(model, data.encoded["test"], data.splits["test"].labels)
    val = score(model, data.encoded["val"], data.splits["val"].labels)
    model_name = "MLP over a bag of words" if cfg.ngrams == 1 else f"MLP over 1-{cfg.ngrams}gram bag"
    record = run.record(result, task="classification", model_name=model_name, params=count_params(model),
                        val_accuracy=val["accuracy"], test_accuracy=test["accuracy"], test_f1=test["f1"],
                        test_loss=test["loss"], test_confusion_matrix=test["confusion_matrix"])
    print(f"{cfg.dataset} held-out: accuracy {test['accuracy']:.4f}  macro-F1 {test['f1']:.4f}  "
          f"(val accuracy {val['accuracy']:.4f}; {result.train_seconds:.1f} s of training)  -> {run.dir}")
    return record


if __name__ == "__main__":
    run_main(main)
