"""The data registry: every data set the curriculum uses, where it comes from, and how to load it.

A file is looked for in this order:
  1. `$LLM_DATA_DIR`
  2. `../shared/data` beside the repository root (the offline mirror)
  3. `~/.cache/llm-stages` (or `$LLM_CACHE_DIR`), downloading it there from its canonical URL when online.
Every file's checksum is verified the first time a process uses it. Missing or corrupt data raises
a `DataError` naming the file, the places searched, and the fix.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import os
import re
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from shared.cli import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent


class DataError(UserError):
    """A data file is missing, corrupt or unreadable."""


@dataclass(frozen=True)
class DataFile:
    """One file of a data set.

    `path` is relative to a data root and `checksum` is "sha256:<hex>" (or "md5:<hex>" where only
    that was published). `url` is the canonical download; `member` names the file inside a zip
    or tar archive there. When the download is stored in a form other than the mirror's (the
    mirror gzipped it, say), `download_path` and `download_checksum` describe that form.
    """

    path: str
    checksum: str
    url: str  # "" for a file only the offline mirror has (its README says where it came from)
    member: str | None = None
    download_path: str | None = None
    download_checksum: str | None = None

    def forms(self) -> list[tuple[str, str]]:
        forms = [(self.path, self.checksum)]
        if self.download_path:
            forms.append((self.download_path, self.download_checksum or self.checksum))
        return forms


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    files: dict[str, DataFile] = field(default_factory=dict)


def _sha(hexdigest: str) -> str:
    return "sha256:" + hexdigest


_GLUE = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
_CHARCNN = "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv"
_WIKITEXT = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
_MULTI30K = "https://github.com/multi30k/dataset/raw/master/data/task1/raw"
_TIKTOKEN = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"

REGISTRY: dict[str, DatasetInfo] = {}


def _register(name: str, description: str, **files: DataFile) -> None:
    REGISTRY[name] = DatasetInfo(name, description, dict(files))


_register(
    "sst2", "SST-2 (GLUE): binary sentiment of movie-review phrases; 67,349 train / 872 dev.",
    train=DataFile("sst2/train.tsv.gz", _sha("1c4843303462f8f93e006ff618a9e61d207468cafd030046d7d7fd6b78af342b"),
                   _GLUE, member="SST-2/train.tsv", download_path="sst2/train.tsv",
                   download_checksum=_sha("48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1")),
    dev=DataFile("sst2/dev.tsv", _sha("54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
                 _GLUE, member="SST-2/dev.tsv"),
)
_register(
    "trec", "TREC question classification: 5,452 train / 500 test questions, 6 coarse classes.",
    train=DataFile("trec/train_5500.label", _sha("9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3"),
                   "https://cogcomp.seas.upenn.edu/Data/QA/QC/train_5500.label"),
    test=DataFile("trec/TREC_10.label", _sha("033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e"),
                  "https://cogcomp.seas.upenn.edu/Data/QA/QC/TREC_10.label"),
)
_register(
    "ag_news", "AG News: 120,000 train / 7,600 test news articles, 4 topics (train split needs a download).",
    train=DataFile("ag_news/train.csv", "md5:b1a00f826fdfbd249f79597b59e1dc12", f"{_CHARCNN}/train.csv"),
    test=DataFile("ag_news/test.csv", _sha("521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699"),
                  f"{_CHARCNN}/test.csv"),
)
_register(
    "sms_spam", "SMS Spam Collection: 5,574 messages, 747 spam.",
    all=DataFile("sms_spam/SMSSpamCollection",
                 _sha("7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"),
                 "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
                 member="SMSSpamCollection"),
)
_register(
    "tinyshakespeare", "Tiny Shakespeare (char-rnn): 1,115,394 characters.",
    all=DataFile("tinyshakespeare/input.txt", _sha("86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
                 "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"),
)
_register(
    "the_verdict", "Edith Wharton, The Verdict (1908): 20,479 characters.",
    all=DataFile("the-verdict/the-verdict.txt",
                 _sha("b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"),
                 "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/"
                 "the-verdict.txt"),
)
_register(
    "wikitext2", "WikiText-2 (v1, tokenized): 2.09M train tokens.",
    train=DataFile("wikitext-2/wiki.train.tokens",
                   _sha("9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
                   _WIKITEXT, member="wikitext-2/wiki.train.tokens"),
    valid=DataFile("wikitext-2/wiki.valid.tokens",
                   _sha("f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
                   _WIKITEXT, member="wikitext-2/wiki.valid.tokens"),
    test=DataFile("wikitext-2/wiki.test.tokens",
                  _sha("d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
                  _WIKITEXT, member="wikitext-2/wiki.test.tokens"),
)
_MULTI30K_SHA = {
    "train.en": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.en": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "test_2016_flickr.en": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.fr": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
}
_register(
    "multi30k", "Multi30k task 1: 29,000 train / 1,014 val / 1,000 test_2016_flickr captions in en, de, fr.",
    **{name: DataFile(f"multi30k/{name}.gz", _sha(sha), f"{_MULTI30K}/{name}.gz")
       for name, sha in _MULTI30K_SHA.items()},
)
_register(
    "fra_eng", "Tatoeba English-French sentence pairs (manythings.org): 167,130 pairs.",
    all=DataFile("fra-eng/fra-eng.zip", _sha("161c93f18da3a7e6df611ed961426613260de8af06ccf8c79c977afe5135ac44"),
                 "http://www.manythings.org/anki/fra-eng.zip"),
)
_register(
    "gpt2_bpe", "OpenAI GPT-2 byte-pair encoding files, named as tiktoken caches them.",
    vocab_bpe=DataFile("tiktoken/6d1cbeee0f20b3d9449abfede4726ed8212e3aee",
                       _sha("1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
                       f"{_TIKTOKEN}/vocab.bpe"),
    encoder_json=DataFile("tiktoken/6c7ea1a7e38e3a7f062df639a5b80947f075ffe6",
                          _sha("196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
                          f"{_TIKTOKEN}/encoder.json"),
)


_register(
    "gutenberg_children", "506 public-domain books by twelve authors of children's literature (Project Gutenberg, "
    "rcdm-uga/Gutenberg_Text at a0b16d3): about 150 MB of text, 40M GPT-2 tokens; see shared/gutenberg.py.",
    archive=DataFile("gutenberg_children/gutenberg_children.tar.xz",
                     _sha("4ccf9e1dc0335afc5e03e38e05d1fb8a83c8110bab9073222c97712f230e2efb"), ""),
    manifest=DataFile("gutenberg_children/manifest.json",
                      _sha("67792ed72cfeed1cd10b45c1fc0d99afee0682bb114f63c49cd29577fdb2ee27"), ""),
)


# --------------------------------------------------------------------------- finding files


def data_roots() -> list[Path]:
    """The places searched, in order (the cache last: downloads land there)."""
    roots = []
    if os.environ.get("LLM_DATA_DIR"):
        roots.append(Path(os.environ["LLM_DATA_DIR"]).expanduser())
    roots.append(REPO_ROOT.parent / "shared" / "data")
    roots.append(cache_dir())
    return roots


def cache_dir() -> Path:
    return Path(os.environ.get("LLM_CACHE_DIR", "~/.cache/llm-stages")).expanduser()


def file_checksum(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: set[tuple[str, str]] = set()  # (resolved path, checksum) already checked in this process


def _verify(path: Path, checksum: str) -> None:
    key = (str(path.resolve()), checksum)
    if key in _verified:
        return
    algorithm, expected = checksum.split(":", 1)
    actual = file_checksum(path, algorithm)
    if actual != expected:
        raise DataError(
            f"{path} is corrupt: its {algorithm} is {actual[:12]}..., expected {expected[:12]}...; "
            f"delete it and restore it from the mirror (or let it download again)."
        )
    _verified.add(key)


def _download(entry: DataFile, dest: Path) -> None:
    """Fetch `entry.url` (extracting `entry.member`) into `dest`, atomically."""
    with urllib.request.urlopen(entry.url, timeout=30) as response:
        payload = response.read()
    if entry.member:
        if zipfile.is_zipfile(io.BytesIO(payload)):
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                payload = archive.read(entry.member)
        else:
            import tarfile

            with tarfile.open(fileobj=io.BytesIO(payload)) as archive:
                payload = archive.extractfile(entry.member).read()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp.write(payload)
    os.replace(tmp.name, dest)


def data_file(dataset: str, key: str) -> Path:
    """The verified local path of one file of a registered data set (downloading it if needed)."""
    info = dataset_info(dataset)
    if key not in info.files:
        raise DataError(f"data set {dataset!r} has no file {key!r}; it has: {', '.join(info.files)}.")
    entry = info.files[key]
    roots = data_roots()
    for root in roots:
        for rel, checksum in entry.forms():
            candidate = root / rel
            if candidate.is_file():
                _verify(candidate, checksum)
                return candidate
    target_rel, target_checksum = entry.forms()[-1]
    target = cache_dir() / target_rel
    searched = ", ".join(str(r) for r in roots)
    if os.environ.get("LLM_OFFLINE") not in (None, "", "0"):
        reason = "LLM_OFFLINE is set"
    elif not entry.url:
        reason = "it cannot be downloaded (it comes with the offline mirror; its README says how it was made)"
    else:
        try:
            print(f"downloading {entry.url} -> {target}")
            _download(entry, target)
            _verify(target, target_checksum)
            return target
        except DataError:
            target.unlink(missing_ok=True)
            raise
        except Exception as err:  # no network, HTTP error, bad archive: all end the same way
            reason = f"the download from {entry.url} failed ({type(err).__name__}: {err})"
    raise DataError(
        f"data file {entry.path} ({info.name}) was not found in {searched}, and {reason}; "
        f"put the file under one of those folders (or set LLM_DATA_DIR to a folder that has it) "
        f"or run once with network access to download it."
    )


def dataset_info(dataset: str) -> DatasetInfo:
    if dataset not in REGISTRY:
        raise DataError(f"unknown data set {dataset!r}; known: {', '.join(REGISTRY)}.")
    return REGISTRY[dataset]


def open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    """Open a (possibly gzipped) text file."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def read_text(dataset: str, key: str = "all", encoding: str = "utf-8") -> str:
    with open_text(data_file(dataset, key), encoding) as fh:
        return fh.read()


# --------------------------------------------------------------------------- loaders


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
    """The SMS spam split of LLMs-from-scratch ch. 6, shared by stages 1 and 6.

    Undersample ham to the 747 spam messages, shuffle with a fixed seed, then split 70% train /
    10% validation / 20% test.
    """
    import random as _random

    data = load_sms_spam()
    rng = _random.Random(seed)
    ham = [i for i, y in enumerate(data.labels) if y == 0]
    spam = [i for i, y in enumerate(data.labels) if y == 1]
    chosen = rng.sample(ham, len(spam)) + spam
    rng.shuffle(chosen)
    n_train, n_val = int(len(chosen) * 0.7), int(len(chosen) * 0.1)
    parts = {"train": chosen[:n_train], "val": chosen[n_train:n_train + n_val], "test": chosen[n_train + n_val:]}
    return {name: LabeledTexts([data.texts[i] for i in idx], [data.labels[i] for i in idx], data.label_names)
            for name, idx in parts.items()}


# --------------------------------------------------------------------------- your own data

USER_FORMATS = ("csv", "json", "parquet", "hf")
USER_SPLIT_SEED = 1337  # the fixed shuffle of a file without its own split column (80 / 10 / 10)


@dataclass(frozen=True)
class TextColumns:
    """The two flags every classifier takes for your own data (a stage's config inherits them)."""

    text_column: str = field(default="text", metadata={"help": "your own data: the column of texts"})
    label_column: str = field(default="label", metadata={"help": "your own data: the column of labels"})


def check_classification_dataset(name: str, known: Sequence[str], flag: str = "--dataset") -> None:
    from shared.cli import check  # a ConfigError: exit 2 with this sentence

    check(name in known or is_user_dataset(name),
          f"{flag} {name!r} is not a data set here: use one of {', '.join(known)}, or your own data as csv:PATH, "
          f"json:PATH, parquet:PATH or hf:NAME")


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


def load_classification(dataset: str, val_fraction: float = 0.05, seed: int = 1337, text_column: str = "text",
                        label_column: str = "label") -> dict[str, LabeledTexts]:
    """train / val / test of a classification data set, the same for every stage that classifies.

    SMS spam: the balanced split above. Where a data set ships no validation split, `val_fraction` of
    train (drawn with `seed`) is held out for model selection. SST-2's labelled held-out split is GLUE's
    dev set; it plays the test role here, as in GLUE papers. Your own data (csv:, json:, parquet:,
    hf:): `load_user_classification`.
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


# --------------------------------------------------------------------------- batching


class EpochBatches:
    """Shuffled mini-batches as a pure function of the batch index, so a resumed run sees the same data.

    Batch i belongs to epoch i // steps_per_epoch; each epoch has its own permutation, drawn from a
    generator seeded with (seed, epoch). The last, smaller batch of an epoch is kept.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int):
        if n_items < 1:
            raise UserError("the training split is empty; check the data set and its filters.")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.steps_per_epoch = math.ceil(n_items / batch_size)
        self._epoch, self._perm = -1, None

    def indices(self, i: int) -> torch.Tensor:
        epoch, k = divmod(i, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n_items, generator=generator)
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size]
