"""The byte-level BPE learned from scratch, and the storybook corpus it is learned on."""

import collections
import gzip
import json

import pytest

from shared.data_registry import REGISTRY, data_file, read_text
from stage5_gpt.bpe import BPE, train_bpe, train_bpe_fast
from stage5_gpt.gutenberg import assign_works, manifest, strip_gutenberg, unwrap, work_key

MANY_SCRIPTS = ["Hello, world!  Two  spaces.", "naïve café — “quotes”", "你好，世界。没有空格的中文句子。",
                "Здравствуй, мир", "مرحبا بالعالم", "नमस्ते दुनिया", "🙂👍🏽 emoji and ZWJ 👩‍👩‍👧", "tabs\tand\r\nCRLF",
                "", " ", "\x00\x01 control bytes"]


@pytest.fixture(scope="module")
def verdict():
    return read_text("the_verdict")


def test_the_written_out_trainer_and_the_fast_one_learn_the_same_merges(verdict):
    slow = train_bpe([verdict], 320)
    fast = train_bpe_fast([verdict], 320)
    assert len(slow) == 320 - 257 and slow == fast
    bpe = BPE(fast)
    assert [bpe.vocab[i] for i in fast[0]] == [b" ", b"t"]  # the most frequent pair: a space before "t"


def test_a_smaller_vocabulary_is_a_prefix_of_a_larger_one(verdict):
    """BPE is greedy, so bench/bpe_compression.py learns 16k tokens once and takes prefixes for 2k-8k."""
    assert train_bpe_fast([verdict], 700)[: 400 - 257] == train_bpe_fast([verdict], 400)


def test_both_encoders_agree_and_decoding_is_exact(verdict):
    bpe = BPE(train_bpe_fast([verdict], 600))
    for text in [verdict[:3000], *MANY_SCRIPTS]:
        ids = bpe.encode(text)
        assert ids == bpe.encode_slow(text)
        assert bpe.decode(ids) == text
    assert len(bpe.encode(verdict)) < 0.45 * len(verdict.encode("utf-8"))  # 600 tokens: 2.4 bytes per token
    again = BPE.from_json(json.loads(json.dumps(bpe.to_json())))
    assert again.encode(verdict[:500]) == bpe.encode(verdict[:500]) and again.size == 600


def _mirror_texts():
    """The first 200 kB of every text file of every data set in the mirror (the archive's books too)."""
    import tarfile

    for name, info in REGISTRY.items():
        for key in info.files:
            if name == "ag_news" and key == "train":
                continue  # not in the offline mirror
            path = data_file(name, key)
            if path.suffix == ".xz":
                with tarfile.open(path, "r:xz") as archive:
                    for i, member in enumerate(archive):  # the first 12 books: decompressing all takes long
                        if i >= 12:
                            break
                        if member.isfile():
                            yield member.name, archive.extractfile(member).read(200_000).decode("utf-8", "replace")
                continue
            raw = gzip.open(path).read(200_000) if path.suffix == ".gz" else path.read_bytes()[:200_000]
            yield f"{name}/{key}", raw.decode("utf-8", errors="replace")


def test_round_trip_is_exact_on_every_text_in_the_mirror(verdict):
    bpe = BPE(train_bpe_fast([verdict], 1000))
    seen = 0
    for name, text in _mirror_texts():
        assert bpe.decode(bpe.encode(text)) == text, name
        seen += 1
    assert seen >= 25


def test_header_and_footer_are_stripped_in_every_style():
    new = ("The Project Gutenberg EBook of X\r\nlicence words\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n"
           "\r\nProduced by Someone and the Online Distributed Proofreading Team\r\n\r\nCHAPTER I\r\n\r\nOnce upon a "
           "time.\r\n\r\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nmore licence")
    old = ("*Project Gutenberg Etext*\n***START**THE SMALL PRINT!**FOR PUBLIC DOMAIN ETEXTS**START***\nlegal\n"
           "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\nOnce upon a time.\n\n"
           "End of the Project Gutenberg Etext of X\n")
    assert strip_gutenberg(new) == "CHAPTER I\n\nOnce upon a time."
    assert strip_gutenberg(old) == "Once upon a time."
    assert strip_gutenberg("A book with no markers.\n") == "A book with no markers."


def test_unwrap_joins_prose_keeps_verse_and_chapter_breaks():
    text = ("It was a dark and stormy night; the rain fell in torrents, except\nat occasional intervals,  when "
            "it was checked by a violent gust\nof wind.\n\nTwinkle, twinkle,\nlittle star,\nHow I wonder\n"
            "what you are!\n\n\n\nCHAPTER II\n\nNext.")
    assert unwrap(text) == ("It was a dark and stormy night; the rain fell in torrents, except at occasional "
                            "intervals, when it was checked by a violent gust of wind.\n\nTwinkle, twinkle,\n"
                            "little star,\nHow I wonder\nwhat you are!\n\n\nCHAPTER II\n\nNext.\n")


def test_every_edition_of_a_work_is_on_one_side_of_the_split():
    works = assign_works([b["title"] for b in manifest()])
    sides = collections.defaultdict(set)
    for work, split in works.values():
        sides[work].add(split)
    assert all(len(s) == 1 for s in sides.values())
    assert collections.Counter(split for _, split in works.values()) == {"train": 475, "val": 18, "test": 13}
    alice = {split for title, (work, split) in works.items() if work == "alice"}
    assert len([t for t, (w, _) in works.items() if w == "alice"]) == 8 and len(alice) == 1  # with Looking-Glass
    assert work_key("Rinkitink in Oz / Wherein Is Recorded") == work_key("Rinkitink in Oz") == "rinkitink in oz"
