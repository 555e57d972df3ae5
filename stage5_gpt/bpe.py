"""Byte-level BPE, learned from scratch: GPT-2's tokenizer recipe, written out, plus a fast path.

    1. Pre-split the text with GPT-2's regex: words with their leading space (" the"), numbers,
       runs of punctuation, runs of spaces. Merges never cross these boundaries.
    2. Each piece is a sequence of bytes (UTF-8): 256 symbols cover every text, emoji and Chinese
       included, so nothing is ever unknown and decode(encode(text)) == text.
    3. Training: count every adjacent pair of symbols over all pieces (weighted by how often each
       piece occurs), merge the most frequent pair into a new symbol, and repeat until the vocabulary
       has vocab_size entries (256 bytes + the merges + <|endoftext|>).
    4. Encoding a piece: apply the learned merges in the order they were learned, the earliest
       (most frequent) first, until no learned pair is left.

`train_bpe` and `BPE.encode_slow` are that algorithm in a few dozen lines, fine for a book; `train_bpe_fast`
and `BPE.encode` do the same through Hugging Face's `tokenizers` (Rust) for a 150 MB corpus. Ties (two
pairs with the same count) are broken the same way in both, so they learn the same merges (tested).
Token ids: 0-255 the bytes, then one id per merge in the order learned, then <|endoftext|> last.

`gpt2_tokenizer` is OpenAI's own GPT-2 BPE (50,257 tokens, learned on WebText), read through tiktoken
from the offline mirror: the tokenizer stage 5 compares ours with, and the one GPT-2's weights need.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import regex

from shared.cli import UserError
from shared.data_registry import data_file, dataset_info

# GPT-2's pre-tokenizer (the pattern of tiktoken's "gpt2" encoding).
GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOT = "<|endoftext|>"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 bytes to printable characters (so tokens can be shown and stored as text):
    printable bytes map to themselves, the others to characters from 256 upwards."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _tie_order() -> dict[int, int]:
    """The rank of each byte in the order Hugging Face's trainer numbers its starting alphabet (sorted
    by GPT-2's printable character): pairs with equal counts go to the one with the smallest ranks."""
    chars = bytes_to_unicode()
    return {b: rank for rank, b in enumerate(sorted(range(256), key=lambda b: chars[b]))}


def pieces(text: str) -> list[str]:
    return GPT2_SPLIT.findall(text)


def train_bpe(texts: Iterable[str], vocab_size: int) -> list[tuple[int, int]]:
    """Learn vocab_size - 257 merges, the algorithm written out. Returns the merges as pairs of token ids
    (the merge learned k-th becomes token 256 + k)."""
    words = Counter(p for text in texts for p in pieces(text))
    corpus = {tuple(w.encode("utf-8")): n for w, n in words.items()}  # piece as byte ids -> count
    rank = _tie_order()  # and merged tokens rank after every byte, in the order they were made
    merges: list[tuple[int, int]] = []
    while 256 + len(merges) + 1 < vocab_size:
        pairs: Counter[tuple[int, int]] = Counter()
        for word, n in corpus.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break  # every piece is a single token already
        best = max(pairs, key=lambda p: (pairs[p], -rank[p[0]], -rank[p[1]]))
        new = 256 + len(merges)
        merges.append(best)
        rank[new] = new
        corpus = {_merge(word, best, new): n for word, n in corpus.items()}
    return merges


def _merge(word: tuple[int, ...], pair: tuple[int, int], new: int) -> tuple[int, ...]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def train_bpe_fast(texts: Iterable[str], vocab_size: int) -> list[tuple[int, int]]:
    """The same merges, learned by Hugging Face's `tokenizers` trainer (Rust, all cores)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    ids = {bytes([b]): b for b in range(256)}
    merges = []
    for merge in model["merges"]:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        a, b = (bytes(to_byte[c] for c in part) for part in (left, right))
        merges.append((ids[a], ids[b]))
        ids[a + b] = 256 + len(merges) - 1
    return merges


class BPE:
    """A trained byte-level BPE: encode / decode, saved as JSON (its merges)."""

    def __init__(self, merges: Sequence[Sequence[int]]):
        self.merges = [tuple(m) for m in merges]
        self.vocab: list[bytes] = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        self.eot_id = len(self.vocab)  # <|endoftext|>, the last id
        self._fast = None

    @property
    def size(self) -> int:
        return len(self.vocab) + 1

    # ------------------------------------------------------------------ the algorithm, written out

    def encode_slow(self, text: str) -> list[int]:
        """Each piece: its bytes, then the learned merges applied earliest-learned first."""
        ids: list[int] = []
        for piece in pieces(text):
            word = list(piece.encode("utf-8"))
            while len(word) > 1:
                pair = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
                if pair not in self.ranks:
                    break  # no learned merge left in this piece
                word = list(_merge(tuple(word), pair, 256 + self.ranks[pair]))
            ids += word
        return ids

    # ------------------------------------------------------------------ the fast path, and decoding

    def encode(self, text: str) -> list[int]:
        """The same ids as encode_slow, through Hugging Face's `tokenizers` (Rust)."""
        if self._fast is None:
            from tokenizers import Tokenizer, models, pre_tokenizers

            chars = bytes_to_unicode()
            show = [("".join(chars[b] for b in token)) for token in self.vocab]
            model = models.BPE(vocab={s: i for i, s in enumerate(show)},
                               merges=[(show[a], show[b]) for a, b in self.merges])
            self._fast = Tokenizer(model)
            self._fast.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        return self._fast.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        self.encode("")  # builds the fast tokenizer
        return [e.ids for e in self._fast.encode_batch(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        data = b"".join(self.vocab[i] for i in ids if i < len(self.vocab))  # <|endoftext|> decodes to nothing
        return data.decode("utf-8", errors="replace")

    def to_json(self) -> dict:
        return {"merges": [list(m) for m in self.merges]}

    @classmethod
    def from_json(cls, data: dict) -> BPE:
        return cls(data["merges"])


# --------------------------------------------------------------------------- GPT-2's own BPE


def gpt2_tokenizer():
    """GPT-2 BPE (tiktoken), offline: TIKTOKEN_CACHE_DIR points at the mirror unless the user's holds the files."""
    import tiktoken

    names = [Path(entry.path).name for entry in dataset_info("gpt2_bpe").files.values()]
    user_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not user_dir or not all((Path(user_dir) / name).is_file() for name in names):
        paths = [data_file("gpt2_bpe", key) for key in ("vocab_bpe", "encoder_json")]
        if paths[0].parent != paths[1].parent:
            raise UserError("the two GPT-2 BPE files must sit in one folder; set TIKTOKEN_CACHE_DIR to it.")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(paths[0].parent)
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as err:  # tiktoken tries the network when its cache misses
        raise UserError(f"cannot load the GPT-2 BPE files ({type(err).__name__}); set TIKTOKEN_CACHE_DIR "
                        f"to a folder holding tiktoken's cached vocab.bpe and encoder.json.") from None
