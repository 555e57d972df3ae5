"""The train / val / test splits of text classification, the same for every stage that classifies.

Stage 1's MLP, stage 2's recurrent and stage 4's Transformer classifiers, and stage 6's finetuned GPT
all read their data through `load_classification`, so their scores compare on one split. A name in
`CLASSIFICATION_DATASETS` is one of the course's data sets (shared/course_data.py); csv:, json:,
parquet: and hf: are your own (shared/own_data.py). `check_classification_dataset` refuses anything
else when the config is parsed, before any data is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from shared.cli import check
from shared.course_data import LabeledTexts, load_ag_news, load_sms_spam_balanced, load_sst2, load_trec
from shared.own_data import is_user_dataset, load_user_classification

# The course's classification data sets, the keys `load_classification` knows.
CLASSIFICATION_DATASETS = ("sst2", "trec", "ag_news", "sms_spam")


def check_classification_dataset(name: str, known: Sequence[str] = CLASSIFICATION_DATASETS,
                                 flag: str = "--dataset") -> None:
    """A ConfigError (exit 2 with this sentence) unless `name` is in `known` or is your own data."""
    check(name in known or is_user_dataset(name),
          f"{flag} {name!r} is not a data set here: use one of {', '.join(known)}, or your own data as csv:PATH, "
          f"json:PATH, parquet:PATH or hf:NAME")


def load_classification(dataset: str, val_fraction: float = 0.05, seed: int = 1337, text_column: str = "text",
                        label_column: str = "label") -> dict[str, LabeledTexts]:
    """train / val / test of a classification data set, the same for every stage that classifies.

    SMS spam: the balanced split (`load_sms_spam_balanced`). Where a data set ships no validation split,
    `val_fraction` of train (drawn with `seed`) is held out for model selection. SST-2's labelled
    held-out split is GLUE's dev set; it plays the test role here, as in GLUE papers. Your own data
    (csv:, json:, parquet:, hf:): `load_user_classification`.
    """
    if is_user_dataset(dataset):
        return load_user_classification(dataset, text_column, label_column)
    if dataset == "sms_spam":
        return load_sms_spam_balanced()
    loaded = {"sst2": load_sst2, "trec": load_trec, "ag_news": load_ag_news}[dataset]()
    train, test = loaded["train"], loaded["dev" if dataset == "sst2" else "test"]
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, int(len(train) * val_fraction))

    def subset(idx: list[int]) -> LabeledTexts:
        return LabeledTexts([train.texts[i] for i in idx], [train.labels[i] for i in idx], train.label_names)

    return {"train": subset(order[n_val:]), "val": subset(order[:n_val]), "test": test}
