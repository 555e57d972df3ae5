"""Stage 1 data: the labelled splits, and texts turned into bags of n-gram ids.

A text becomes the ids of its words (from a vocabulary built on the training split) followed by
the ids of its word bigrams and trigrams, which are hashed into `hash_buckets` extra rows of the
embedding table (the fastText trick: no n-gram vocabulary to store, collisions are rare enough).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shared.tokenizers import UNK_ID, Vocab, word_tokenize

BOUNDARY = "<s>"


def ngram_bucket(gram: Sequence[str], buckets: int) -> int:
    """The hash bucket (0 .. buckets-1) of an n-gram. crc32, not hash(): Python's str hash changes
    from process to process, and a saved model must find its n-grams in the same rows next time."""
    return zlib.crc32(" ".join(gram).encode("utf-8")) % buckets


def bag_of_ngrams(words: Sequence[str], vocab: dict[str, int], ngrams: int, hash_buckets: int) -> list[int]:
    """The embedding rows of a text's features: each word's id (unknown: UNK_ID), then, for n = 2 ..
    ngrams, every n-gram of <s> w1 .. wk <s> hashed into the rows after the vocabulary,
    len(vocab) + ngram_bucket(gram, hash_buckets). An empty text is one unknown word."""
    ids = [vocab.get(w, UNK_ID) for w in words]
    marked = [BOUNDARY, *words, BOUNDARY]  # n-grams also see where the text starts and ends
    for n in range(2, ngrams + 1):
        ids += [len(vocab) + ngram_bucket(marked[i:i + n], hash_buckets) for i in range(len(marked) - n + 1)]
    return ids or [UNK_ID]


BagOfNgrams = Callable[[Sequence[str], dict[str, int], int, int], list[int]]  # bag_of_ngrams' signature


@dataclass
class NgramFeaturizer:
    """Texts -> embedding rows: the vocabulary and n-gram settings, and the function that does it
    (`bag_of_ngrams` above, or the learner's with --yours: model.Parts passes it in)."""

    vocab: Vocab
    ngrams: int
    hash_buckets: int
    lowercase: bool = True
    bag_of_ngrams: BagOfNgrams = field(default=bag_of_ngrams, repr=False, compare=False)

    @classmethod
    def fit(cls, texts: list[str], ngrams: int, hash_buckets: int, min_freq: int, lowercase: bool = True,
            bag_of_ngrams: BagOfNgrams | None = None):
        """The vocabulary of the training texts; bag_of_ngrams None: the reference."""
        vocab = Vocab.build((word_tokenize(t, lowercase) for t in texts), min_freq=min_freq)
        return cls(vocab, ngrams, hash_buckets, lowercase, bag_of_ngrams or cls.bag_of_ngrams)

    @property
    def num_embeddings(self) -> int:
        return len(self.vocab) + (self.hash_buckets if self.ngrams > 1 else 0)

    def encode(self, text: str) -> list[int]:
        return self.bag_of_ngrams(word_tokenize(text, self.lowercase), self.vocab.stoi, self.ngrams, self.hash_buckets)

    def features(self, text: str) -> list[str]:
        """The n-grams behind `encode(text)`, for inspecting which ones a model weighs most."""
        words = word_tokenize(text, self.lowercase)
        marked = [BOUNDARY, *words, BOUNDARY]
        return words + [" ".join(marked[i:i + n]) for n in range(2, self.ngrams + 1)
                        for i in range(len(marked) - n + 1)]

    def encode_feature(self, gram: str) -> int:
        """The embedding row of one feature as `features` spells it ("how many", "<s> what")."""
        words = gram.split(" ")
        return self.vocab.encode(words)[0] if len(words) == 1 else self._ngram_id(words)

    def _ngram_id(self, words: list[str]) -> int:
        """Hashed n-grams (n >= 2) live in the rows after the word vocabulary."""
        return len(self.vocab) + ngram_bucket(words, self.hash_buckets)

    def to_json(self) -> dict:
        return {"vocab": self.vocab.to_json(), "ngrams": self.ngrams, "hash_buckets": self.hash_buckets,
                "lowercase": self.lowercase}

    @classmethod
    def from_json(cls, data: dict) -> NgramFeaturizer:
        return cls(Vocab.from_json(data["vocab"]), data["ngrams"], data["hash_buckets"], data["lowercase"])

