"""Metrics several stages report: classification accuracy / macro-F1 / confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict:
    """accuracy, macro-F1 (every class weighs the same) and the confusion matrix (rows = true class)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels = list(range(num_classes))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def format_confusion(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> str:
    width = max(6, *(len(n) for n in names))
    lines = ["true \\ pred".ljust(width + 2) + "".join(n[:width].rjust(width + 1) for n in names)]
    for name, row in zip(names, matrix):
        lines.append(name[:width].ljust(width + 2) + "".join(str(v).rjust(width + 1) for v in row))
    return "\n".join(lines)
