"""Stage 2: the written-out RNN/GRU/LSTM equal PyTorch's, truncated BPTT trains, generation and errors."""


import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import check_resume_equals_uninterrupted, first_and_last_train_loss, run_cli
from test_robustness import one_error, refused_flag

from shared.tokenizers import EOS, UNK_ID, Vocab
from stage2_rnn_lstm import evaluate as stage2_evaluate
from stage2_rnn_lstm import generate as stage2_generate
from stage2_rnn_lstm import train as stage2_train
from stage2_rnn_lstm.data import ConsecutiveBatches, load_streams
from stage2_rnn_lstm.model import RecurrentLM, RNNConfig


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cells_written_out_equal_torch_modules(cell):
    torch.manual_seed(0)
    cfg = RNNConfig(vocab_size=30, model_type=cell, embed_dim=12, hidden_size=16, num_layers=3, dropout=0.0, fast=False)
    scratch = RecurrentLM(cfg).eval()
    fast = RecurrentLM(RNNConfig(**{**cfg.__dict__, "fast": True})).eval()
    fast.load_state_dict(scratch.state_dict())  # same parameter names and layouts: a straight copy
    idx = torch.randint(0, 30, (4, 9))
    hidden = scratch.init_hidden(4)
    hidden = tuple(torch.randn_like(h) for h in hidden) if cell == "lstm" else torch.randn_like(hidden)
    out_a, h_a = scratch(idx, hidden)
    out_b, h_b = fast(idx, hidden)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-5)
    for a, b in zip(h_a if cell == "lstm" else [h_a], h_b if cell == "lstm" else [h_b]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # And the gradients: the teaching path trains the same function.
    out_a.sum().backward()
    out_b.sum().backward()
    torch.testing.assert_close(scratch.rnn.weight_hh_l0.grad, fast.rnn.weight_hh_l0.grad, rtol=0, atol=1e-4)


def test_consecutive_batches_continue_each_other():
    ids = torch.arange(1000)
    batches = ConsecutiveBatches(ids, batch_size=4, seq_len=10, device=torch.device("cpu"))
    x0, y0, first = batches(0)
    x1, _, later = batches(1)
    assert first and not later
    assert torch.equal(y0[:, :-1], x0[:, 1:])  # targets are the inputs shifted by one
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)  # row r of batch 1 picks up where row r of batch 0 stopped
    assert batches(batches.steps_per_epoch)[2]  # a new epoch starts from a fresh state


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stage2_rnn_lstm" / "tiny"
    record = stage2_train.main(["--preset", "tiny", "--out_dir", str(out), "--max_steps", "100"])
    return out, record


def test_tiny_preset_trains(tiny_run):
    out, record = tiny_run
    first, last = first_and_last_train_loss(out)
    assert last < first - 0.8
    assert record["val_loss"] < 0.8 * math.log(69)  # a uniform guess over the 69 characters scores ln(69)
    assert 0.2 < record["val_top1_accuracy"] < record["val_top5_accuracy"] <= 1  # above always guessing a space


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_other_cells_and_the_written_out_path_train(cell, tmp_path):
    record = stage2_train.main(["--preset", "tiny", "--model_type", cell, "--no-fast", "--max_steps", "20",
                                "--out_dir", str(tmp_path)])
    assert record["model_type"] == cell and record["val_loss"] < 4.0


def test_resume_carries_the_hidden_state(tmp_path):
    check_resume_equals_uninterrupted(stage2_train.main, tmp_path)


def test_generation_is_reproducible_with_a_seed(tiny_run, capsys):
    out, _ = tiny_run
    flags = ["--checkpoint", str(out), "--prompt", "ROMEO:", "--max_new_tokens", "50", "--seed", "3",
             "--top_k", "10", "--top_p", "0.9"]
    first, second = stage2_generate.main(flags), stage2_generate.main(flags)
    assert first == second and len(first[0]) == 50
    assert "ROMEO:" + first[0] in capsys.readouterr().out
    assert stage2_generate.main([*flags, "--seed", "4"]) != first


def test_evaluate_scores_the_whole_text_as_one_stream(tiny_run):
    out, _ = tiny_run
    results = stage2_evaluate.main(["--checkpoint", str(out), "--split", "val", "--eval_streams", "1"])
    # The same numbers by hand: the model reads the whole val text from a zero state and predicts each next character.
    model, _, _ = stage2_train.load_model(out)
    ids = load_streams("tinyshakespeare", "char").splits["val"]  # (N,)
    with torch.no_grad():
        logits, _ = model.eval()(ids[None, :-1], None)  # (1, N - 1, V)
    loss = F.cross_entropy(logits[0], ids[1:]).item()
    assert results["val_loss"] == pytest.approx(loss, rel=1e-4)
    assert results["val_perplexity"] == pytest.approx(math.exp(loss), rel=1e-4)
    assert results["val_bits_per_char"] == pytest.approx(loss / math.log(2), rel=1e-4)
    assert results["val_top1_accuracy"] == pytest.approx((logits[0].argmax(-1) == ids[1:]).float().mean().item(),
                                                         abs=1e-6)
    saved = json.loads((out / "eval.json").read_text())
    assert saved["val_loss"] == results["val_loss"] and saved["eval_streams"] == 1


def test_gate_activations_follow_the_lstm_equations(tiny_run):
    out, _ = tiny_run
    model, vocab, _ = stage2_train.load_model(out)
    idx = torch.tensor([vocab.encode(list("To be, or not"))])  # (1, 13)
    gates = stage2_evaluate.lstm_gates(model.eval(), idx)
    assert set(gates) == {"input", "forget", "output"}
    # By hand: PyTorch's own LSTM with the first layer's weights gives the states h_{t-1}; the gates are
    # sigmoid(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), in PyTorch's order input, forget, (cell), output.
    rnn = model.rnn
    reference = torch.nn.LSTM(model.cfg.embed_dim, model.cfg.hidden_size, batch_first=True)
    reference.load_state_dict({name: getattr(rnn, name) for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                                                     "bias_hh_l0")})
    with torch.no_grad():
        x = model.embedding(idx)  # (1, 13, E)
        h, _ = reference(x)  # (1, 13, H)
        h_before = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)  # h_{t-1}, zero at the start
        z = x @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h_before @ rnn.weight_hh_l0.T + rnn.bias_hh_l0  # (1, 13, 4H)
    input_gate, forget_gate, _, output_gate = z[0].sigmoid().chunk(4, dim=-1)  # each (13, H)
    for name, expected in [("input", input_gate), ("forget", forget_gate), ("output", output_gate)]:
        torch.testing.assert_close(gates[name], expected, rtol=0, atol=1e-5)


def test_unknown_characters_and_bad_flags_are_one_sentence(tiny_run, capsys):
    out, _ = tiny_run
    done = run_cli("stage2_rnn_lstm.generate", "--checkpoint", str(out), "--prompt", "ROMEO: 你好")
    one_error(done, 1, "not in the vocabulary: '你', '好'")  # generate as a user runs it
    tied = run_cli("stage2_rnn_lstm.train", "--tie_weights", "--embed_dim", "64", "--hidden_size", "128")
    one_error(tied, 2, "--tie_weights needs --embed_dim equal to --hidden_size")  # and train
    refused_flag(stage2_train.main, ["--model_type", "transformer"], "invalid choice: 'transformer'", capsys)


def test_unknown_words_in_a_prompt_are_read_as_unk(capsys):
    vocab = Vocab.build([["The", "cat", "sat", "on", "the", "mat"]], level="word")
    ids = stage2_generate.encode_prompt(vocab, "The zorblax sat")
    assert ids == [vocab.encode(["The"])[0], UNK_ID, vocab.encode(["sat"])[0]]
    assert "note: zorblax not in the vocabulary: read as <unk>" in capsys.readouterr().out
    stage2_generate.encode_prompt(vocab, "the cat sat")  # every word known: no note
    assert "note" not in capsys.readouterr().out
    # And back to text: words joined by spaces, WikiText's end-of-line token a line break.
    ids = vocab.encode(["The", "cat", EOS, "sat", "on", "<unk>"])
    assert stage2_generate.decode(vocab, ids) == "The cat\nsat on <unk>"


def test_word_level_trains_on_wikitext2_and_generates_words(tmp_path, capsys):
    """Two steps, scored on samples of val and test (the 33k-word softmax over all of them takes seconds)."""
    record = stage2_train.main(["--preset", "tiny", "--vocab_type", "word", "--max_steps", "2", "--eval_interval", "2",
                                "--eval_tokens", "500", "--final_tokens", "2000", "--out_dir", str(tmp_path)])
    assert record["dataset"] == "wikitext2"  # the preset's data set for words
    assert "val_bits_per_word" in record and "test_perplexity" in record and "val_bits_per_char" not in record
    _, vocab, _ = stage2_train.load_model(tmp_path)
    assert len(vocab) == 33_280  # WikiText-2's words, <eos> and the specials
    assert abs(record["val_loss"] - math.log(len(vocab))) < 0.3  # two steps: still about a uniform guess per word
    texts = stage2_generate.main(["--checkpoint", str(tmp_path), "--prompt", "The zorblax", "--max_new_tokens", "5",
                                  "--seed", "1"])
    assert "zorblax not in the vocabulary: read as <unk>" in capsys.readouterr().out
    words = texts[0].split()  # 5 new tokens: words of the vocabulary, and <eos> as line breaks
    assert len(words) + texts[0].count("\n") == 5 and all(vocab.encode([w])[0] != UNK_ID or w == "<unk>" for w in words)


# --------------------------------------------------------------------------- classifying (classify_train)


@pytest.mark.parametrize("pool", ["max", "mean", "last"])
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_ignores_padding_and_the_two_paths_agree(pool, fast, bidirectional):
    from stage2_rnn_lstm.model import RecurrentClassifier, RNNConfig

    torch.manual_seed(0)
    cfg = RNNConfig(vocab_size=50, model_type="lstm", embed_dim=8, hidden_size=12, num_layers=2, dropout=0.0, fast=fast)
    model = RecurrentClassifier(cfg, 3, pool, bidirectional).eval()
    text = torch.tensor([[5, 9, 14, 3]])
    padded = torch.tensor([[5, 9, 14, 3, 0, 0], [7, 8, 0, 0, 0, 0]])  # right-padded with <pad> = 0
    assert torch.allclose(model(text)[0], model(padded)[0], atol=1e-6)
    other = RecurrentClassifier(RNNConfig(**{**cfg.__dict__, "fast": not fast}), 3, pool, bidirectional).eval()
    other.load_state_dict(model.state_dict())  # same parameter names on both paths
    assert torch.allclose(other(padded), model(padded), atol=1e-5)


def test_the_backward_stack_reads_each_text_from_its_last_word():
    from stage2_rnn_lstm.model import RecurrentClassifier, RNNConfig

    torch.manual_seed(0)
    cfg = RNNConfig(vocab_size=50, model_type="gru", embed_dim=8, hidden_size=6, num_layers=1, dropout=0.0)
    model = RecurrentClassifier(cfg, 2, "last", bidirectional=True).eval()
    words = [5, 9, 14, 3]
    summary = {}
    model.head.register_forward_hook(lambda m, inputs, out: summary.update(x=inputs[0]))
    model(torch.tensor([words + [0, 0]]))
    backwards = model.read(model.rnn_backward, model.embedding(torch.tensor([words[::-1]])))  # (1, 4, 6)
    forwards = model.read(model.rnn, model.embedding(torch.tensor([words])))
    assert torch.allclose(summary["x"][0], torch.cat([forwards[0, -1], backwards[0, -1]]), atol=1e-6)


def test_classifier_trains_above_chance_on_trec(tmp_path):
    from stage2_rnn_lstm import classify_train

    record = classify_train.main(["--preset", "tiny", "--dataset", "trec", "--max_steps", "120",
                                  "--out_dir", str(tmp_path / "run")])
    assert record["task"] == "classification" and record["test_accuracy"] > 0.35  # 6 classes; the largest is 28%
    assert record["model"].startswith("LSTM 1x32 over words")
