"""Stage 5 data: text -> token ids, prepared once into uint16 files that are memory-mapped.

    Tiny Shakespeare   characters, first 90% train / last 10% val (the split stage 2 uses)
    WikiText-2         GPT-2 BPE, train / valid / test as shipped
    the-verdict, --text_file PATH   GPT-2 BPE (or --tokenizer char), 90/10 split

Training batches are random windows (nanoGPT style) drawn from a generator seeded with the batch
index, so batch i is always the same and a resumed run sees the same data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from shared.cli import UserError
from shared.data import cache_dir, data_file, file_checksum, read_text, split_train_val_text
from shared.records import write_json
from shared.runs import atomic_write
from shared.tokenizers import Vocab, gpt2_tokenizer

GPT2_VOCAB = 50257
GPT2_EOT = 50256  # <|endoftext|>


class Tokenizer:
    """Characters (a Vocab built on the training text) or GPT-2 BPE, behind one encode/decode."""

    def __init__(self, kind: str, vocab: Vocab | None = None):
        self.kind, self.vocab = kind, vocab
        self._bpe = gpt2_tokenizer() if kind == "gpt2" else None

    @property
    def size(self) -> int:
        return GPT2_VOCAB if self.kind == "gpt2" else len(self.vocab)

    def encode(self, text: str, strict: bool = False) -> list[int]:
        if self.kind == "gpt2":
            return self._bpe.encode_ordinary(text)
        return self.vocab.encode(list(text), strict=strict)

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if self.kind == "gpt2":
            return self._bpe.decode([i for i in ids if i < GPT2_VOCAB])  # padded rows never decode
        return "".join(self.vocab.decode(ids))

    def to_json(self) -> dict:
        return {"kind": self.kind, "vocab": self.vocab.to_json() if self.vocab else None}

    @classmethod
    def from_json(cls, data: dict) -> Tokenizer:
        return cls(data["kind"], Vocab.from_json(data["vocab"]) if data.get("vocab") else None)


@dataclass
class Corpus:
    tokenizer: Tokenizer
    splits: dict[str, np.ndarray]  # split -> uint16 token ids (memory-mapped)
    chars: dict[str, int] = field(default_factory=dict)  # characters per split: for per-character loss
    words: dict[str, int] = field(default_factory=dict)  # whitespace words per split: for per-word perplexity

    def check_context(self, block_size: int) -> None:
        """Every split must hold at least one window of block_size + 1 tokens, or it cannot be scored."""
        for split, tokens in self.splits.items():
            if len(tokens) < block_size + 1:
                raise UserError(f"the {split} split has {len(tokens):,} tokens, fewer than --block_size {block_size} "
                                f"+ 1; give a longer text (the last 10% is held out for validation) or a smaller "
                                f"--block_size.")


def _raw_splits(dataset: str, text_file: str) -> tuple[dict[str, str], str]:
    """The text of each split, and a fingerprint of the source for the prepared-file cache."""
    if dataset == "wikitext2":
        keys = {"train": "train", "val": "valid", "test": "test"}
        texts = {split: read_text("wikitext2", key) for split, key in keys.items()}
        return texts, "wikitext2-" + str(data_file("wikitext2", "train").stat().st_size)
    if dataset == "text_file":
        path = Path(text_file).expanduser()
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
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
        fingerprint = "text-" + hashlib.sha256(raw).hexdigest()[:16]
    else:
        text = read_text(dataset)
        fingerprint = dataset
    train, val = split_train_val_text(text)
    return {"train": train, "val": val}, fingerprint


def load_corpus(dataset: str, tokenizer: str, text_file: str = "") -> Corpus:
    """Tokenize once (cached under ~/.cache/llm-stages/prepared) and memory-map the token files.

    meta.json records each token file's size and sha256; a file that no longer matches (truncated,
    damaged, deleted) is noticed on load and the folder is prepared again.
    """
    texts, fingerprint = _raw_splits(dataset, text_file)
    folder = cache_dir() / "prepared" / f"{fingerprint}-{tokenizer}"
    meta = _read_prepared(folder)
    if meta is None:
        meta = _prepare(folder, texts, tokenizer)
    splits = {s: np.memmap(folder / f"{s}.bin", dtype=np.uint16, mode="r") for s in meta["splits"]}
    return Corpus(Tokenizer.from_json(meta["tokenizer"]), splits, meta["chars"], meta["words"])


def _prepare(folder: Path, texts: dict[str, str], tokenizer: str) -> dict:
    if tokenizer == "char":
        tok = Tokenizer("char", Vocab.build([list(texts["train"])], level="char"))
    else:
        tok = Tokenizer("gpt2")
    files = {}
    for split, text in texts.items():
        data = np.asarray(tok.encode(text), dtype=np.uint16).tobytes()
        with atomic_write(folder / f"{split}.bin", binary=True) as fh:
            fh.write(data)
        files[split] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    meta = {"tokenizer": tok.to_json(), "splits": list(texts), "files": files,
            "chars": {s: len(t) for s, t in texts.items()}, "words": {s: len(t.split()) for s, t in texts.items()}}
    write_json(folder / "meta.json", meta)  # written last: its presence means the folder is complete
    return meta


def _read_prepared(folder: Path) -> dict | None:
    """The prepared folder's meta.json if every token file still matches it; None (and one line
    saying why) when it must be prepared again."""
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
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
                 max_tokens: int = 0, rank: int = 0, world: int = 1) -> tuple[float, int]:
    """Summed cross-entropy (nats) and the number of tokens scored, over non-overlapping windows.

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
    span = torch.arange(block_size + 1)
    for first in range(0, len(chosen), batch_size):
        starts = chosen[first:first + batch_size] * block_size
        windows = data[starts[:, None] + span].to(device)  # (B, T+1)
        logits, _ = model(windows[:, :-1])  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), windows[:, 1:].flatten(),
                                                 reduction="sum")
        total += loss.double()
        count += windows[:, 1:].numel()
    if world > 1:
        counted = torch.tensor([total.item(), float(count)], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(counted)
        return counted[0].item(), int(counted[1].item())
    return total.item(), count
