"""Your own data: a labelled file (or a Hugging Face hub data set) in place of the course's.

    --dataset csv:PATH, json:PATH (JSON lines), parquet:PATH   a local file, read offline through
                                                               `datasets.load_dataset`
    --dataset hf:NAME                                          a data set on the Hugging Face hub (online)
    --text_column, --label_column                              which columns hold the texts and labels

`load_user_classification` turns it into the same train / val / test `LabeledTexts` the course's data
sets give, so every classifier trains on it unchanged; every problem with the file (missing, empty,
a column that is not there, a label seen only in test) is one `DataError` sentence saying what to fix.
`dataset_slug` names a run folder after the file. (The translators' own data, tsv:PATH, is read in
shared/translation.py.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from shared.course_data import LabeledTexts
from shared.data_registry import DataError

USER_FORMATS = ("csv", "json", "parquet", "hf")
USER_SPLIT_SEED = 1337  # the fixed shuffle of a file without its own split column (80 / 10 / 10)


@dataclass(frozen=True)
class TextColumns:
    """The two flags every classifier takes for your own data (a stage's config inherits them)."""

    text_column: str = field(default="text", metadata={"help": "your own data: the column of texts"})
    label_column: str = field(default="label", metadata={"help": "your own data: the column of labels"})


def is_user_dataset(name: str) -> bool:
    """csv:PATH, json:PATH, parquet:PATH (local files) or hf:NAME (the Hugging Face hub)."""
    kind, colon, where = name.partition(":")
    return bool(colon and where) and kind in USER_FORMATS


def dataset_slug(name: str) -> str:
    """A run-folder name for a data set: "csv:data/my reviews.csv" -> "csv-my-reviews" (tsv: too)."""
    if not (is_user_dataset(name) or (name.startswith("tsv:") and len(name) > 4)):
        return name
    kind, _, where = name.partition(":")
    stem = where.replace("/", "-") if kind == "hf" else Path(where).stem
    return f"{kind}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', stem).strip('-') or 'data'}"


def _read_table(spec: str) -> dict:
    """The splits of hf:NAME, or {"all": rows} of csv:/json:/parquet:PATH, read through `datasets`."""
    kind, _, where = spec.partition(":")
    try:
        import datasets
    except ImportError:
        raise DataError("reading your own data needs the `datasets` package: pip install datasets") from None
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    if kind == "hf":
        try:
            return dict(datasets.load_dataset(where))
        except Exception as err:
            raise DataError(f"could not load {where!r} from the Hugging Face hub ({type(err).__name__}); check the "
                            f"name, or (offline) save it as a file elsewhere and pass csv:, json: or parquet:PATH."
                            ) from None
    path = Path(where).expanduser()
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file; give the path of a {kind.upper()} file "
                        f"after {kind}:.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it needs a header and at least one row per class.")
    try:
        return {"all": datasets.load_dataset(kind, data_files=str(path), split="train")}
    except Exception as err:
        raise DataError(f"{path} could not be read as {kind.upper()} ({type(err).__name__}); check that the file "
                        f"is {kind.upper()}, or name its format instead (csv:, json: or parquet:).") from None


def load_user_classification(spec: str, text_column: str = "text", label_column: str = "label",
                             val_fraction: float = 0.1) -> dict[str, LabeledTexts]:
    """train / val / test of your own labelled texts (`--dataset csv:PATH --text_column --label_column`).

    Splits: a hub data set's own (train, validation, test; without a test split its validation
    becomes the test and `val_fraction` of train is held out). A file's own when it has a `split`
    column (train / val or validation / test); otherwise a fixed shuffle (seed 1337, whatever --seed
    says, so every run sees the same split) cut 80% / 10% / 10%. Labels become ids in sorted order
    of the training labels; the names are saved with every checkpoint.
    """
    parts = _read_table(spec)
    source = spec.partition(":")[2]
    first = next(iter(parts.values()))
    missing = [c for c in (text_column, label_column) if c not in first.column_names]
    if missing:
        raise DataError(f"{source} has no column {missing[0]!r} (its columns: {', '.join(first.column_names)}); "
                        f"name yours with --text_column and --label_column.")
    if sum(len(p) for p in parts.values()) == 0:
        raise DataError(f"{source} has no rows; it needs at least one text per class.")
    rows = {name: (list(p[text_column]), list(p[label_column]), list(p["split"]) if "split" in p.column_names else None)
            for name, p in parts.items()}
    if "all" in rows:
        texts, labels, split_col = rows.pop("all")
        if split_col is not None:
            alias = {"train": "train", "val": "val", "validation": "val", "dev": "val", "test": "test"}
            unknown = sorted({str(s) for s in split_col} - set(alias))
            if unknown:
                raise DataError(f"{source}: the split column holds {unknown[0]!r}; use train, val (or validation) "
                                f"and test.")
            for name in ("train", "val", "test"):
                idx = [i for i, s in enumerate(split_col) if alias[str(s)] == name]
                rows[name] = ([texts[i] for i in idx], [labels[i] for i in idx], None)
        else:
            order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(USER_SPLIT_SEED)).tolist()
            n_val = n_test = max(1, len(texts) // 10)
            cuts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
            rows = {name: ([texts[i] for i in idx], [labels[i] for i in idx], None) for name, idx in cuts.items()}
    else:
        rows = {{"validation": "val", "dev": "val"}.get(k, k): v for k, v in rows.items()}
        if "test" not in rows and "val" in rows:
            rows["test"] = rows.pop("val")
        if "val" not in rows and "train" in rows:
            texts, labels, _ = rows["train"]
            order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(USER_SPLIT_SEED)).tolist()
            n_val = max(1, int(len(texts) * val_fraction))
            rows["val"] = ([texts[i] for i in order[:n_val]], [labels[i] for i in order[:n_val]], None)
            rows["train"] = ([texts[i] for i in order[n_val:]], [labels[i] for i in order[n_val:]], None)
    for name in ("train", "val", "test"):
        if not rows.get(name) or not rows[name][0]:
            raise DataError(f"{source} gives no {name} rows; add some (a split column, or more rows to split).")
    names = getattr(first.features.get(label_column), "names", None)  # a hub ClassLabel knows its names
    values = sorted({v for v in rows["train"][1] if v is not None}, key=lambda v: (str(type(v)), v))
    for name in ("val", "test"):
        unseen = sorted({str(v) for v in rows[name][1]} - {str(v) for v in values})
        if unseen:
            raise DataError(f"{source}: label {unseen[0]!r} is in the {name} split but never in train; a classifier "
                            f"cannot learn it: add training rows with that label or drop those rows.")
    if len(values) < 2:
        raise DataError(f"{source} has {len(values)} label value in train; a classifier needs at least two.")
    ids = {str(v): i for i, v in enumerate(values)}
    label_names = [names[v] if names and isinstance(v, int) else str(v) for v in values]
    out = {}
    for name in ("train", "val", "test"):
        texts, labels, _ = rows[name]
        if any(v is None for v in labels):
            raise DataError(f"{source}: a {name} row has no {label_column!r}; fill it in or drop the row.")
        out[name] = LabeledTexts(["" if t is None else str(t) for t in texts], [ids[str(v)] for v in labels],
                                 label_names)
    return out
