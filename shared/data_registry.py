"""The data registry: every file the course reads, where it comes from, and how it is found and checked.

Each data set is registered once below (its files, their checksums, the canonical URL). A file is
looked for in this order:
  1. `$LLM_DATA_DIR`
  2. `../shared/data` beside the repository root (the offline mirror)
  3. `~/.cache/llm-stages` (or `$LLM_CACHE_DIR`), downloading it there from its canonical URL when online.
Every file's checksum is verified the first time a process uses it. Missing or corrupt data raises
a `DataError` naming the file, the places searched, and the fix.

Reading a file into texts and labels is the next module's job (shared/course_data.py).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

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
    "instruct", "LLMs-from-scratch ch07: 1,100 Alpaca-style instructions; the same with chosen / rejected responses.",
    instructions=DataFile("instruct/instruction-data.json",
                          _sha("7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944"),
                          "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/"
                          "instruction-data.json"),
    preferences=DataFile("instruct/instruction-data-with-preference.json",
                         _sha("305315abf14f65fa42c01a0877572f832606571c2a7d49f152ac1d758b16756e"),
                         "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/"
                         "04_preference-tuning-with-dpo/instruction-data-with-preference.json"),
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
    "rcdm-uga/Gutenberg_Text at a0b16d3): about 150 MB of text, 40M GPT-2 tokens; see stage5_gpt/gutenberg.py.",
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
