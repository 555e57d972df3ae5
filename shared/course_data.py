"""The course's data sets, read into Python: texts with labels, parallel sentences, raw text.

Each loader asks the registry (shared/data_registry.py) for its verified files and parses them,
raising a `DataError` that names the file and line when a line is not in the expected form.

    classification   load_sst2, load_trec, load_ag_news, load_sms_spam (and load_sms_spam_balanced,
                     the balanced split every classifier uses), each as `LabeledTexts`
    translation      load_multi30k (one language side), load_fra_eng (English-French pairs)
    language models  split_train_val_text: the first 90% of a text to train on, the last 10% to validate

The train / val / test splits every classifier uses are made in shared/classification_data.py.
"""

from __future__ import annotations

import csv
import io
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

from shared.data_registry import DataError, data_file, open_text


@dataclass
class LabeledTexts:
    """A text-classification split: parallel lists of texts and integer labels."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def _malformed(path: Path, line_no: int, why: str) -> DataError:
    return DataError(f"{path} line {line_no} is malformed ({why}); restore the file from the mirror.")


def load_sst2() -> dict[str, LabeledTexts]:
    """SST-2 train and dev (GLUE's dev is the held-out split everyone reports)."""
    names = ["negative", "positive"]
    splits = {}
    for split in ("train", "dev"):
        path = data_file("sst2", split)
        texts, labels = [], []
        with open_text(path) as fh:
            for line_no, line in enumerate(fh, 1):
                if line_no == 1:
                    continue  # header: sentence<TAB>label
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) != 2 or parts[1] not in ("0", "1"):
                    raise _malformed(path, line_no, "expected 'sentence<TAB>0|1'")
                texts.append(parts[0].strip())
                labels.append(int(parts[1]))
        splits[split] = LabeledTexts(texts, labels, names)
    return splits


TREC_CLASSES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def load_trec() -> dict[str, LabeledTexts]:
    """TREC-6 (coarse labels): the 5,452 training and 500 test questions."""
    splits = {}
    for split in ("train", "test"):
        path = data_file("trec", split)
        texts, labels = [], []
        with open_text(path, encoding="latin-1") as fh:
            for line_no, line in enumerate(fh, 1):
                label, _, question = line.rstrip("\r\n").partition(" ")
                coarse = label.split(":")[0]
                if coarse not in TREC_CLASSES or not question:
                    raise _malformed(path, line_no, "expected 'COARSE:fine question'")
                texts.append(question)
                labels.append(TREC_CLASSES.index(coarse))
        splits[split] = LabeledTexts(texts, labels, TREC_CLASSES)
    return splits


def load_ag_news() -> dict[str, LabeledTexts]:
    """AG News train and test: title and description joined, classes World/Sports/Business/Sci-Tech."""
    names = ["World", "Sports", "Business", "Sci/Tech"]
    splits = {}
    for split in ("train", "test"):
        path = data_file("ag_news", split)
        texts, labels = [], []
        with open_text(path) as fh:
            for line_no, row in enumerate(csv.reader(fh), 1):
                if len(row) != 3 or row[0] not in ("1", "2", "3", "4"):
                    raise _malformed(path, line_no, "expected 'class,title,description'")
                texts.append(f"{row[1]} {row[2]}".replace("\\", " "))
                labels.append(int(row[0]) - 1)
        splits[split] = LabeledTexts(texts, labels, names)
    return splits


def load_sms_spam() -> LabeledTexts:
    """All 5,574 SMS messages; ham = 0, spam = 1. Stages choose their own splits."""
    path = data_file("sms_spam", "all")
    texts, labels = [], []
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, 1):
            label, sep, text = line.rstrip("\r\n").partition("\t")
            if not sep or label not in ("ham", "spam"):
                raise _malformed(path, line_no, "expected 'ham|spam<TAB>text'")
            texts.append(text)
            labels.append(int(label == "spam"))
    return LabeledTexts(texts, labels, ["ham", "spam"])


def split_train_val_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """The char-level split every stage shares: first 90% train, last 10% validation."""
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


def load_multi30k(split: str, lang: str) -> list[str]:
    """One side of Multi30k: split in train|val|test_2016_flickr, lang in en|de|fr."""
    with open_text(data_file("multi30k", f"{split}.{lang}")) as fh:
        return [line.rstrip("\r\n") for line in fh]


def load_fra_eng() -> list[tuple[str, str]]:
    """The Tatoeba (English, French) pairs from manythings.org's fra-eng.zip."""
    path = data_file("fra_eng", "all")
    with zipfile.ZipFile(path) as archive, archive.open("fra-eng/fra.txt") as raw:
        lines = io.TextIOWrapper(raw, encoding="utf-8").read().splitlines()
    pairs = []
    for line_no, line in enumerate(lines, 1):
        fields = line.split("\t")
        if len(fields) < 2:
            raise _malformed(path, line_no, "expected 'English<TAB>French'")
        pairs.append((fields[0], fields[1]))
    return pairs


def load_sms_spam_balanced(seed: int = 123) -> dict[str, LabeledTexts]:
    """The SMS spam split of LLMs-from-scratch ch. 6: every classifier's `sms_spam` (stages 1, 2, 4, 6).

    Undersample ham to the 747 spam messages, shuffle with a fixed seed, then split 70% train /
    10% validation / 20% test.
    """
    data = load_sms_spam()
    rng = random.Random(seed)
    ham = [i for i, y in enumerate(data.labels) if y == 0]
    spam = [i for i, y in enumerate(data.labels) if y == 1]
    chosen = rng.sample(ham, len(spam)) + spam
    rng.shuffle(chosen)
    n_train, n_val = int(len(chosen) * 0.7), int(len(chosen) * 0.1)
    parts = {"train": chosen[:n_train], "val": chosen[n_train:n_train + n_val], "test": chosen[n_train + n_val:]}
    return {name: LabeledTexts([data.texts[i] for i in idx], [data.labels[i] for i in idx], data.label_names)
            for name, idx in parts.items()}
