"""Stage 3: attention is a distribution over real source tokens, a tiny model memorises 50 pairs,
and the train / evaluate / translate commands work end to end (and fail with one sentence)."""

import pytest
import torch
from helpers import check_memorises_fifty_pairs, check_resume_equals_uninterrupted, first_and_last_train_loss, run_cli
from test_robustness import one_error, refused_flag

from shared.checkpoint import load_checkpoint
from shared.translation import tokenize
from stage3_attention_seq2seq import evaluate as stage3_evaluate
from stage3_attention_seq2seq import train as stage3_train
from stage3_attention_seq2seq import translate as stage3_translate
from stage3_attention_seq2seq.config import Seq2SeqTrainConfig
from stage3_attention_seq2seq.model import Seq2Seq, Seq2SeqConfig


@pytest.mark.parametrize("kind", ["bahdanau", "luong"])
def test_attention_weights_sum_to_one_and_are_zero_on_padding(kind):
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(20, 20, 8, 8, 8, 8, 0.0, kind)).eval()
    src = torch.tensor([[5, 6, 7, 3, 0, 0], [5, 6, 7, 8, 9, 3]])  # the first is padded after <eos>
    src_len = torch.tensor([4, 6])
    state = model.decode_start(src, src_len)
    _, state, weights = model.step(torch.tensor([2, 2]), state)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    assert torch.all(weights[0, 4:] == 0) and torch.all(weights[0, :4] > 0)
    # Padding changes nothing: the padded sentence alone gives the same logits.
    alone = model.decode_step(torch.tensor([2]), model.decode_start(src[:1, :4], src_len[:1]))[0]
    torch.testing.assert_close(model.decode_step(torch.tensor([2, 2]), model.decode_start(src, src_len))[0][:1],
                               alone, rtol=0, atol=1e-5)


def test_tiny_model_memorises_fifty_pairs():
    cfg = Seq2SeqTrainConfig(preset="tiny", max_len=20, max_decode_len=25)
    check_memorises_fifty_pairs(lambda src, tgt: Seq2Seq(Seq2SeqConfig(src, tgt, 64, 64, 64, 64, 0.0, "bahdanau")),
                                cfg, lr=3e-3)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stage3_attention_seq2seq" / "tiny"
    record = stage3_train.main(["--preset", "tiny", "--out_dir", str(out)])
    return out, record


def test_tiny_preset_learns_to_translate_a_little(tiny_run):
    out, record = tiny_run
    first, last = first_and_last_train_loss(out)
    assert last < first - 1.0
    assert record["test_bleu"] > 0.3 and record["test_bleu_beam"] > 0.3 and record["test_chrf"] > 5


def test_train_records_both_bleu_figures_and_hypotheses(tiny_run):
    out, record = tiny_run
    for key in ("test_bleu", "test_bleu_beam", "test_chrf", "test_bleu_tok_lower", "bleu_signature"):
        assert key in record
    lines = (out / "test.greedy.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == record["test_pairs"] == 300 and (out / "test.beam3.txt").exists()  # tiny: 300 of 1000


def test_evaluate_and_translate(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    results = stage3_evaluate.main(["--checkpoint", str(out), "--beam_size", "2", "--device", "cpu"])
    assert results["split"] == "test" and "bleu_beam" in results
    png = tmp_path / "attn.png"
    text = stage3_translate.main(["a man is riding a bike .", "--checkpoint", str(out),
                                  "--show_attention", str(png)])
    vocab = load_checkpoint(out)["tgt_vocab"]["itos"]
    assert text.strip() and all(token in vocab for token in tokenize(text))  # words it learnt, detokenized
    assert png.stat().st_size > 1000


def test_resume_equals_uninterrupted(tmp_path):
    check_resume_equals_uninterrupted(stage3_train.main, tmp_path, "--max_train_pairs", "200", "--eval_pairs", "20",
                                      "--beam_size", "1")


@pytest.mark.parametrize("flags, message", [
    (["--src", "en", "--tgt", "en"], "--src and --tgt must differ"),
    (["--dataset", "fra_eng", "--src", "de"], "English and French only"),
    (["--attention_type", "dot"], "invalid choice"),
])
def test_bad_flags_exit_with_one_sentence(flags, message, capsys):
    refused_flag(stage3_train.main, flags, message, capsys)


def test_translate_without_a_trained_model_says_how(tmp_path):
    done = run_cli("stage3_attention_seq2seq.translate", "hello", "--checkpoint", str(tmp_path / "nothing"))
    one_error(done, 1, "does not exist")  # translate as a user runs it
