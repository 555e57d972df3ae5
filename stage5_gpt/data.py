"""Stage 5 data: text -> token ids, prepared once into uint16 files that are memory-mapped.

    Tiny Shakespeare     characters, first 90% train / last 10% val (the split stage 2 uses)
    WikiText-2           GPT-2 BPE, train / valid / test as shipped
    gutenberg_children   506 storybooks, split by work (stage5_gpt/gutenberg.py); a byte-level BPE learned
                         on its train split (stage5_gpt/bpe.py, --vocab_size, 8192 by default)
    the-verdict, --text_file PATH   GPT-2 BPE (or --tokenizer char / bpe), 90/10 split

Documents (books) are separated by <|endoftext|> where the tokenizer has it. Training batches are
random windows (nanoGPT style) drawn from a generator seeded with the batch index, so batch i is
always the same and a resumed run sees the same data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from shared.cli import UserError
from shared.course_data import split_train_val_text
from shared.data_registry import cache_dir, data_file, file_checksum, read_text
from shared.metrics import TOP_K, next_token_hits
from shared.records import write_json
from shared.runs import atomic_write
from shared.tokenizers import Vocab
from stage5_gpt.bpe import BPE, gpt2_tokenizer, train_bpe_fast

GPT2_VOCAB = 50257
GPT2_EOT = 50256  # <|endoftext|>
DEFAULT_BPE_VOCAB = 8192


class Tokenizer:
    """Characters (a Vocab built on the training text), GPT-2's BPE, or a BPE learned on the training
    text (stage5_gpt/bpe.py), behind one encode / decode. `eot` is the end-of-text id, or None (characters)."""

    def __init__(self, kind: str, vocab: Vocab | None = None, bpe: BPE | None = None):
        self.kind, self.vocab, self.bpe = kind, vocab, bpe
        self._gpt2 = gpt2_tokenizer() if kind == "gpt2" else None

    @property
    def size(self) -> int:
        return {"gpt2": GPT2_VOCAB, "bpe": self.bpe.size if self.bpe else 0}.get(self.kind) or len(self.vocab)

    @property
    def eot(self) -> int | None:
        return {"gpt2": GPT2_EOT, "bpe": self.bpe.eot_id if self.bpe else None}.get(self.kind)

    def encode(self, text: str, strict: bool = False) -> list[int]:
        if self.kind == "gpt2":
            return self._gpt2.encode_ordinary(text)
        if self.kind == "bpe":
            return self.bpe.encode(text)
        return self.vocab.encode(list(text), strict=strict)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Many documents at once, one after another with <|endoftext|> between them (characters: a
        blank line), as uint16."""
        if self.kind == "char":
            return np.asarray(self.encode("\n\n".join(texts)), dtype=np.uint16)
        encoded = self.bpe.encode_batch(texts) if self.kind == "bpe" else self._gpt2.encode_ordinary_batch(texts)
        joined: list[int] = []
        for i, ids in enumerate(encoded):
            joined += ([self.eot] if i else []) + ids
        return np.asarray(joined, dtype=np.uint16)

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if self.kind == "gpt2":
            return self._gpt2.decode([i for i in ids if i < GPT2_VOCAB])  # padded rows never decode
        if self.kind == "bpe":
            return self.bpe.decode(ids)
        return "".join(self.vocab.decode(ids))

    def to_json(self) -> dict:
        return {"kind": self.kind, "vocab": self.vocab.to_json() if self.vocab else None,
                "bpe": self.bpe.to_json() if self.bpe else None}

    @classmethod
    def from_json(cls, data: dict) -> Tokenizer:
        return cls(data["kind"], Vocab.from_json(data["vocab"]) if data.get("vocab") else None,
                   BPE.from_json(data["bpe"]) if data.get("bpe") else None)


@dataclass
class Corpus:
    tokenizer: Tokenizer
    splits: dict[str, np.ndarray]  # split -> uint16 token ids (memory-mapped)
    chars: dict[str, int] = field(default_factory=dict)  # characters per split: for per-character loss
    words: dict[str, int] = field(default_factory=dict)  # whitespace words per split: for per-word perplexity
    bytes: dict[str, int] = field(default_factory=dict)  # UTF-8 bytes per split: for bits per byte

    def check_context(self, block_size: int) -> None:
        """Every split must hold at least one window of block_size + 1 tokens, or it cannot be scored."""
        for split, tokens in self.splits.items():
            if len(tokens) < block_size + 1:
                raise UserError(f"the {split} split has {len(tokens):,} tokens, fewer than --block_size {block_size} "
                                f"+ 1; give a longer text (the last 10% is held out for validation) or a smaller "
                                f"--block_size.")


def _fingerprint(dataset: str, text_file: str) -> str:
    """Names the source of a prepared folder: it changes when the source does."""
    if dataset == "wikitext2":
        return "wikitext2-" + str(data_file("wikitext2", "train").stat().st_size)
    if dataset == "gutenberg_children":
        return "gutenberg_children-" + str(data_file("gutenberg_children", "archive").stat().st_size)
    if dataset == "text_file":
        return "text-" + hashlib.sha256(_read_text_file(text_file).encode("utf-8")).hexdigest()[:16]
    return dataset


def _read_text_file(text_file: str) -> str:
    path = Path(text_file).expanduser()
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"--text_file {path} does not exist; give the path of a UTF-8 text file.") from None
    except IsADirectoryError:
        raise UserError(f"--text_file {path} is a folder; give the path of one UTF-8 text file.") from None
    except PermissionError:
        raise UserError(f"--text_file {path} cannot be read: permission denied.") from None
    except UnicodeDecodeError as err:
        raise UserError(f"--text_file {path} is not UTF-8 text ({err.reason} at byte {err.start}); "
                        f"convert it to UTF-8 first.") from None
    if len(text) < 100:
        raise UserError(f"--text_file {path} has only {len(text)} characters; give at least a few thousand.")
    return text


def _documents(dataset: str, text_file: str) -> dict[str, list[str]]:
    """The documents of each split (a split of one long text is one document)."""
    if dataset == "wikitext2":
        keys = {"train": "train", "val": "valid", "test": "test"}
        return {split: [read_text("wikitext2", key)] for split, key in keys.items()}
    if dataset == "gutenberg_children":
        from stage5_gpt.gutenberg import load_splits

        return load_splits()
    text = _read_text_file(text_file) if dataset == "text_file" else read_text(dataset)
    train, val = split_train_val_text(text)
    return {"train": [train], "val": [val]}


def load_corpus(dataset: str, tokenizer: str, text_file: str = "", vocab_size: int = 0) -> Corpus:
    """Tokenize once (cached under ~/.cache/llm-stages/prepared) and memory-map the token files.

    meta.json records each token file's size and sha256; a file that no longer matches (truncated,
    damaged, deleted) is noticed on load and the folder is prepared again.
    """
    vocab_size = vocab_size or (DEFAULT_BPE_VOCAB if tokenizer == "bpe" else 0)
    name = f"{tokenizer}{vocab_size}" if tokenizer == "bpe" else tokenizer
    folder = cache_dir() / "prepared" / f"{_fingerprint(dataset, text_file)}-{name}"
    meta = _read_prepared(folder)
    if meta is None:
        meta = _prepare(folder, _documents(dataset, text_file), tokenizer, vocab_size)
    splits = {s: np.memmap(folder / f"{s}.bin", dtype=np.uint16, mode="r") for s in meta["splits"]}
    return Corpus(Tokenizer.from_json(meta["tokenizer"]), splits, meta["chars"], meta["words"], meta.get("bytes", {}))


def _prepare(folder: Path, documents: dict[str, list[str]], tokenizer: str, vocab_size: int) -> dict:
    print(f"preparing {folder.name}: {sum(map(len, documents.values()))} documents "
          f"({', '.join(f'{s} {len(d)}' for s, d in documents.items())}), "
          f"{sum(len(t) for d in documents.values() for t in d):,} characters")
    if tokenizer == "char":
        tok = Tokenizer("char", Vocab.build([list("".join(documents["train"]))], level="char"))
    elif tokenizer == "bpe":
        print(f"learning a byte-level BPE of {vocab_size:,} tokens on the train split ...")
        tok = Tokenizer("bpe", bpe=BPE(train_bpe_fast(documents["train"], vocab_size)))
    else:
        tok = Tokenizer("gpt2")
    files, counts = {}, {}
    for split, docs in documents.items():
        data = tok.encode_documents(docs).tobytes()
        with atomic_write(folder / f"{split}.bin", binary=True) as fh:
            fh.write(data)
        files[split] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        counts[split] = len(data) // 2
    texts = {s: "\n\n".join(d) for s, d in documents.items()}
    meta = {"tokenizer": tok.to_json(), "splits": list(documents), "files": files, "tokens": counts,
            "chars": {s: len(t) for s, t in texts.items()}, "words": {s: len(t.split()) for s, t in texts.items()},
            "bytes": {s: len(t.encode("utf-8")) for s, t in texts.items()}}
    write_json(folder / "meta.json", meta)  # written last: its presence means the folder is complete
    print(f"prepared {folder}: tokens {', '.join(f'{s} {n:,}' for s, n in counts.items())}")
    return meta


def _read_prepared(folder: Path) -> dict | None:
    """The prepared folder's meta.json if every token file still matches it; None (and one line
    saying why) when it must be prepared again."""
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["bytes"], meta["tokenizer"]["kind"]  # noqa: B018  (older folders lack them: prepare again)
        problems = []
        for split in meta["splits"]:
            path, expected = folder / f"{split}.bin", meta["files"][split]
            if not path.is_file():
                problems.append(f"{path.name} is missing")
            elif path.stat().st_size != expected["bytes"]:
                problems.append(f"{path.name} has {path.stat().st_size:,} bytes, not {expected['bytes']:,}")
            elif file_checksum(path) != expected["sha256"]:
                problems.append(f"{path.name} does not match its checksum")
    except (OSError, ValueError, KeyError, TypeError):
        problems = ["meta.json is unreadable or from an older version"]
    if not problems:
        return meta
    print(f"the prepared tokens in {folder} are damaged ({'; '.join(problems)}); preparing them again.")
    return None


class RandomWindows:
    """Batch i: `batch_size` random windows of block_size + 1 tokens -> (inputs, targets), each (B, T).

    Under DDP, rank r takes rows r*B .. (r+1)*B of a global batch drawn from the same generator, so
    2 processes with batch B see exactly what 1 process with batch 2B sees.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, block_size: int, seed: int, device: torch.device,
                 rank: int = 0, world: int = 1):
        if len(tokens) <= block_size + 1:
            raise UserError(f"the training text has {len(tokens)} tokens, fewer than --block_size {block_size} + 2; "
                            f"use a longer text or a smaller --block_size.")
        self.batch_size, self.block_size, self.seed, self.rank, self.world = batch_size, block_size, seed, rank, world
        self.device = device
        # Small corpora live on the device as one tensor; gathering windows there costs nothing.
        self.tokens = torch.from_numpy(np.asarray(tokens, dtype=np.int64)).to(device)  # (N,)
        self.offsets_range = torch.arange(block_size + 1, device=device)  # (T+1,)

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        starts = torch.randint(len(self.tokens) - self.block_size - 1, (self.batch_size * self.world,),
                               generator=generator)[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        windows = self.tokens[starts.to(self.device)[:, None] + self.offsets_range]  # (B, T+1)
        return windows[:, :-1], windows[:, 1:]  # inputs (B, T), targets (B, T)


@torch.no_grad()
def score_tokens(model, tokens: np.ndarray, block_size: int, batch_size: int, device: torch.device,
                 max_tokens: int = 0, rank: int = 0, world: int = 1) -> tuple[float, int, list[int]]:
    """Summed cross-entropy (nats), the number of tokens scored, and how many of them were the model's
    top-1 and among its top-5 predictions (shared.metrics.next_token_hits), over non-overlapping windows.

    Every token is predicted from the tokens before it in its window (0 .. block_size - 1 of them),
    the same average context as training. max_tokens > 0 scores evenly spaced windows only.
    """
    data = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    n_windows = (len(data) - 1) // block_size
    chosen = torch.arange(n_windows)
    if max_tokens and max_tokens // block_size < n_windows:
        chosen = torch.linspace(0, n_windows - 1, max(1, max_tokens // block_size)).long()
    chosen = chosen[rank::world]
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    hits = torch.zeros(len(TOP_K), dtype=torch.long, device=device)
    span = torch.arange(block_size + 1)
    for first in range(0, len(chosen), batch_size):
        starts = chosen[first:first + batch_size] * block_size
        windows = data[starts[:, None] + span].to(device)  # (B, T+1)
        logits, _ = model(windows[:, :-1])  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), windows[:, 1:].flatten(),
                                                 reduction="sum")
        total += loss.double()
        hits += next_token_hits(logits.flatten(0, 1), windows[:, 1:].flatten())
        count += windows[:, 1:].numel()
    if world > 1:
        counted = torch.cat([torch.stack([total, torch.tensor(float(count), dtype=torch.float64, device=device)]),
                             hits.double()])
        torch.distributed.all_reduce(counted)
        return counted[0].item(), int(counted[1].item()), [int(h) for h in counted[2:].tolist()]
    return total.item(), count, hits.tolist()
