"""The scikit-learn TF-IDF + logistic-regression baseline, recorded as a run like any model.

Stage 1 and stage 6 both put it next to their neural models on the same split.
"""

from __future__ import annotations

import time
from pathlib import Path

from shared.course_data import LabeledTexts
from shared.metrics import classification_metrics
from shared.records import write_json, write_metrics


def tfidf_logreg(splits: dict[str, LabeledTexts], ngrams: int = 2, C: float = 10.0, max_features: int | None = None):
    """Fit on splits["train"]; return (fitted pipeline, {split: metrics}, seconds to fit)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, ngrams), sublinear_tf=True, max_features=max_features),
        LogisticRegression(C=C, max_iter=3000),
    )
    start = time.perf_counter()
    pipeline.fit(splits["train"].texts, splits["train"].labels)
    seconds = time.perf_counter() - start
    num_classes = len(splits["train"].label_names)
    scores = {name: classification_metrics(split.labels, pipeline.predict(split.texts).tolist(), num_classes)
              for name, split in splits.items()}
    return pipeline, scores, seconds


def record_baseline(stage: str, dataset: str, splits: dict[str, LabeledTexts], run_dir: Path, command: str,
                    ngrams: int = 2, C: float = 10.0) -> dict:
    """Fit the baseline and write config.json + metrics.json into `run_dir`; return the metrics record."""
    pipeline, scores, seconds = tfidf_logreg(splits, ngrams, C)
    write_json(run_dir / "config.json", {"dataset": dataset, "ngrams": ngrams, "C": C, "model": "tfidf-logreg"})
    coefficients = pipeline[-1].coef_.size + pipeline[-1].intercept_.size
    metrics = {
        "stage": stage, "task": "classification", "model": f"TF-IDF 1-{ngrams}gram + logistic regression",
        "dataset": dataset, "preset": "sklearn", "params": int(coefficients), "device": "cpu",
        "train_seconds": round(seconds, 2), "samples_per_sec": round(len(splits["train"]) / seconds, 1),
        "command": command,
    }
    for name, score in scores.items():
        metrics[f"{name}_accuracy"] = score["accuracy"]
        metrics[f"{name}_f1"] = score["f1"]
    metrics["test_confusion_matrix"] = scores["test"]["confusion_matrix"]
    return write_metrics(run_dir, metrics)
