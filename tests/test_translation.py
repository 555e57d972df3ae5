"""The shared translation task: a faithful detokenizer, BLEU, and beam search (beam 1 == greedy)."""

import pytest
import torch
import torch.nn.functional as F

from shared.beam import beam_search, greedy_decode
from shared.course_data import load_multi30k
from shared.tokenizers import EOS_ID
from shared.translation import bleu_scores, detokenize, load_pairs, tokenize


@pytest.mark.parametrize("lang", ["en", "fr", "de"])
def test_detokenizing_the_tokenized_references_gives_them_back(lang):
    refs = load_multi30k("test_2016_flickr", lang)
    scores = bleu_scores([tokenize(r) for r in refs], refs)
    assert scores["bleu"] >= 95 and scores["bleu_tok_lower"] > 99.9
    text = "L'homme, à vélo (rouge) dit \"bonjour\" !"
    assert detokenize(tokenize(text)) == "L'homme, à vélo (rouge) dit \"bonjour\"!"


def test_bleu_orders_better_translations_higher_and_records_the_signature():
    refs = ["A man is riding a bike.", "Two dogs play in the snow."]
    good = bleu_scores([tokenize("A man is riding a bike."), tokenize("Two dogs play in snow.")], refs)
    bad = bleu_scores([tokenize("A dog."), tokenize("Snow.")], refs)
    assert good["bleu"] > bad["bleu"] and good["chrf"] > bad["chrf"]
    assert good["bleu_signature"].startswith("nrefs:1|case:mixed")


def test_pairs_line_up_and_fra_eng_has_a_fixed_split():
    m30k = load_pairs("multi30k", "de", "en")
    assert [len(m30k.src[s]) for s in ("train", "val", "test")] == [29000, 1014, 1000]
    assert m30k.tgt["test"][0] == load_multi30k("test_2016_flickr", "en")[0]
    small = load_pairs("multi30k", "en", "fr", max_train_pairs=50, seed=1)
    assert len(small.src["train"]) == 50 and len(small.tgt["train"]) == 50
    tatoeba = load_pairs("fra_eng", "fr", "en")
    sizes = [len(tatoeba.src[s]) for s in ("train", "val", "test")]
    assert sum(sizes) == 167130 and sizes[1] == sizes[2] == 167130 // 40
    english, french = load_pairs("fra_eng", "en", "fr"), tatoeba
    assert english.src["test"] == french.tgt["test"] and english.tgt["val"] == french.src["val"]  # same fixed split


class ToyDecoder(torch.nn.Module):
    """A fixed random next-token table conditioned on the previous token and the source's first id."""

    def __init__(self, vocab=9):
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, vocab) * 2, requires_grad=False)
        self.table.data[:, :, EOS_ID] -= 1.0

    def decode_start(self, src, src_len):
        return src[:, 0]

    def decode_step(self, prev, state):
        return F.log_softmax(self.table[state, prev], dim=-1), state

    @staticmethod
    def reorder_state(state, index):
        return state[index]


def test_beam_size_one_equals_greedy():
    model = ToyDecoder()
    src, src_len = torch.arange(4, 9)[:, None], torch.ones(5, dtype=torch.long)  # 5 sentences
    greedy = greedy_decode(model, src, src_len, max_len=12)
    assert beam_search(model, src, src_len, beam_size=1, max_len=12, alpha=0.0) == greedy


def test_a_beam_as_wide_as_the_search_space_finds_the_best_translation():
    import itertools

    model = ToyDecoder()
    src, src_len = torch.arange(4, 9)[:, None], torch.ones(5, dtype=torch.long)
    beam = beam_search(model, src, src_len, beam_size=9 ** 3, max_len=3, alpha=0.0)

    def logp(first, hyp):
        prev, total = 2, 0.0  # <bos>
        for tok in [*hyp, EOS_ID]:
            total += float(F.log_softmax(model.table[first, prev], -1)[tok])
            prev = tok
        return total

    words = [t for t in range(9) if t != EOS_ID]
    for first, found in zip(src[:, 0].tolist(), beam):
        every = [h for n in range(3) for h in itertools.product(words, repeat=n)]
        best = max(every, key=lambda h: logp(first, h))
        assert logp(first, found) == pytest.approx(logp(first, best), abs=1e-5)
