import pytest

from shared.cli import UserError
from shared.tokenizers import (
    BOS_ID,
    PAD_ID,
    UNK_ID,
    Vocab,
    char_tokenize,
    pad_batch,
    word_tokenize,
)
from stage5_gpt.bpe import gpt2_tokenizer


def test_word_tokenize():
    assert word_tokenize("Don't panic, Arthur!") == ["don't", "panic", ",", "arthur", "!"]


def test_vocab_specials_min_freq_and_round_trip(tmp_path):
    vocab = Vocab.build([["a", "b", "a"], ["c", "a", "b"]], min_freq=2)
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert vocab.itos[4:] == ["a", "b"]  # c seen once: dropped
    ids = vocab.encode(["a", "c", "b"])
    assert ids == [4, UNK_ID, 5]
    assert vocab.decode([BOS_ID, *ids]) == ["a", "<unk>", "b"]
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == vocab.itos


def test_char_vocab_round_trip_and_strict_unknowns():
    text = "hello world"
    vocab = Vocab.build([char_tokenize(text)], level="character")
    assert "".join(vocab.decode(vocab.encode(char_tokenize(text)))) == text
    with pytest.raises(UserError, match=r"1 character\(s\) are not in the vocabulary: 'Z'"):
        vocab.encode(list("Zed"), strict=True)


def test_pad_batch():
    batch = pad_batch([[5, 6, 7], [8]])
    assert batch.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]


def test_gpt2_bpe_offline():
    enc = gpt2_tokenizer()
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.decode(enc.encode("Hello world")) == "Hello world"
    assert enc.n_vocab == 50257
