"""Stage 5: the GPT's fast paths equal its teaching path, the KV cache is exact, GPT-2 weights round-trip
through Hugging Face's format, and every command runs end to end on the tiny preset."""

import io
import json
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from helpers import REPO_ROOT, check_resume_equals_uninterrupted, first_and_last_train_loss, run_cli
from test_robustness import one_error, one_sentence, refused_flag

from shared.checkpoint import load_checkpoint, save_checkpoint
from shared.cli import UserError
from shared.records import read_history
from stage5_gpt import evaluate as stage5_evaluate
from stage5_gpt import generate as stage5_generate
from stage5_gpt import info as stage5_info
from stage5_gpt import train as stage5_train
from stage5_gpt.config import PRESETS
from stage5_gpt.model import GPT, GPTConfig, KVCache

SMALL = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32)
VARIANTS = {"gpt2": SMALL, "llama-style": replace(SMALL, position="rope", norm="rmsnorm", mlp="swiglu", bias=False)}


def make(cfg, seed=0):
    torch.manual_seed(seed)
    return GPT(cfg).eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_sdpa_fast_path_equals_written_out_attention(variant):
    fast = make(VARIANTS[variant])
    slow = make(replace(VARIANTS[variant], attention="manual"))
    slow.load_state_dict(fast.state_dict())
    idx = torch.randint(0, 50, (3, 16))
    torch.testing.assert_close(fast(idx)[0], slow(idx)[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_mask_hides_the_future(variant):
    model = make(VARIANTS[variant])
    idx = torch.randint(0, 50, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 50
    torch.testing.assert_close(model(idx)[0][:, :8], model(changed)[0][:, :8], rtol=0, atol=1e-6)
    assert not torch.allclose(model(idx)[0][:, 8:], model(changed)[0][:, 8:])


@pytest.mark.parametrize("variant", VARIANTS)
def test_kv_cache_gives_the_same_logits_and_tokens(variant):
    model = make(VARIANTS[variant])
    idx = torch.randint(0, 50, (2, 14))
    full, _ = model(idx)
    cache = KVCache(model.cfg.n_layer)
    steps = [model(idx[:, :5], cache=cache)[0]] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(5, 14)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)

    prompt = idx[:, :3]
    runs = [torch.cat(list(model.generate(prompt, 13, top_k=10, generator=torch.Generator().manual_seed(3),
                                          kv_cache=kv)), dim=1) for kv in (True, False)]
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("kv_cache", [True, False])
def test_generation_keeps_going_past_the_context_length(kv_cache):
    model = make(SMALL)
    block = SMALL.block_size
    with torch.no_grad():
        for weights in model.parameters():  # at init a GPT greedily repeats one token whatever the context;
            weights.mul_(5)  # 5 times larger weights make each prediction depend on the tokens before it
        new = torch.cat(list(model.generate(torch.zeros(1, 1, dtype=torch.long), 3 * block + 5, temperature=0,
                                            kv_cache=kv_cache)), dim=1)  # greedy: (1, 3 * block + 5)
        text = torch.cat([torch.zeros(1, 1, dtype=torch.long), new], dim=1)[0]
        assert new.shape == (1, 3 * block + 5)
        # Past the context each token is the model's best guess from a window of the tokens just before it:
        # the last block_size of them without the cache; with it, the window the cache slid to (at least half
        # the context: a cache that stopped sliding, or kept stale positions, picks other tokens).
        windows = [block] if not kv_cache else range(block // 2, block + 1)
        for t in range(block + 1, len(text)):
            best = {int(model(text[None, t - k:t])[0][0, -1].argmax()) for k in windows}
            assert int(text[t]) in best, t


def test_gpt2_init_and_weight_tying():
    model = GPT(GPTConfig(vocab_size=100, block_size=32, n_layer=8, n_head=4, n_embd=64))
    assert model.lm_head.weight is model.transformer.wte.weight
    proj = model.transformer.h[0].attn.c_proj.weight.std().item()
    assert abs(proj - 0.02 / 4) < 0.002  # 0.02 / sqrt(2 * n_layer)


# --------------------------------------------------------------------------- Hugging Face GPT-2 weights


@pytest.mark.parametrize("safetensors", [True, False])
def test_hugging_face_gpt2_round_trip(tmp_path, safetensors):
    transformers = pytest.importorskip("transformers")
    from stage5_gpt.hf import export_hf_gpt2, load_hf_gpt2

    torch.manual_seed(0)
    hf_cfg = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=48, n_layer=2, n_head=4,
                                     resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    reference = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with torch.no_grad():  # random biases and norm gains too, so the copy of every tensor is checked
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    reference.save_pretrained(tmp_path / "hf", safe_serialization=safetensors)
    idx = torch.randint(0, 100, (2, 20))
    expected = reference(idx).logits

    ours = load_hf_gpt2(tmp_path / "hf").eval()
    torch.testing.assert_close(ours(idx)[0], expected, rtol=0, atol=1e-5)

    export_hf_gpt2(ours, tmp_path / "exported")
    again = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "exported").eval()
    torch.testing.assert_close(again(idx).logits, expected, rtol=0, atol=1e-5)


def test_a_model_without_biases_exports_exactly(tmp_path):
    transformers = pytest.importorskip("transformers")
    from stage5_gpt.hf import export_hf_gpt2

    ours = make(replace(SMALL, bias=False, gelu="exact"))  # our presets' form: exports as "gelu"
    export_hf_gpt2(ours, tmp_path / "exported")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "exported").eval()
    idx = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(theirs(idx).logits, ours(idx)[0], rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stage5_gpt" / "tinyshakespeare-tiny"
    started = time.perf_counter()
    record = stage5_train.main(["--preset", "tiny", "--out_dir", str(out), "--max_steps", "80"])
    return out, record, time.perf_counter() - started


def test_tiny_preset_trains_and_records_its_numbers(tiny_run):
    out, record, wall_seconds = tiny_run
    first, last = first_and_last_train_loss(out)
    assert last < first - 0.5
    assert record["val_loss"] < 0.85 * math.log(69)  # a uniform guess over the 69 characters scores ln(69)
    assert record["task"] == "language_model"
    # Next-token accuracy: far above a uniform guess's 1/69 (80 steps learn about the spaces), top-5 above top-1.
    assert 0.1 < record["val_top1_accuracy"] < record["val_top5_accuracy"] <= 1
    # The training seconds are a part of the command's own (seconds, not milliseconds), and the speed counts
    # every token trained on: 80 steps of the tiny preset's batches of 8 windows of 32 tokens.
    assert 0 < record["train_seconds"] <= wall_seconds
    tokens_per_sec = json.loads((out / "metrics.json").read_text())["tokens_per_sec"]
    assert tokens_per_sec * record["train_seconds"] == pytest.approx(80 * 8 * 32, rel=0.05)


def test_evaluate_of_a_model_that_knows_nothing_scores_a_uniform_guess(tiny_run, tmp_path):
    """Every weight zero: the logits are all 0, a uniform guess over the 69 characters. Its scores are known
    without the code: loss ln 69 nats, perplexity 69, log2 69 bits per character (and per byte: ASCII)."""
    out, _, _ = tiny_run
    state = load_checkpoint(out / "best.pt")
    state["model"] = {name: torch.zeros_like(weights) for name, weights in state["model"].items()}
    save_checkpoint(tmp_path / "best.pt", state)
    results = stage5_evaluate.main(["--checkpoint", str(tmp_path), "--device", "cpu"])
    assert results["val_loss"] == pytest.approx(math.log(69), rel=1e-5)
    assert results["val_perplexity"] == pytest.approx(69, rel=1e-5)
    assert results["val_bpc"] == pytest.approx(math.log2(69), rel=1e-5)
    assert results["val_bits_per_byte"] == pytest.approx(math.log2(69), rel=1e-5)
    saved = json.loads((tmp_path / "eval-tinyshakespeare.json").read_text())
    assert {key: saved[key] for key in results} == results  # what it printed is what it kept


def test_resume_equals_uninterrupted(tmp_path):
    check_resume_equals_uninterrupted(stage5_train.main, tmp_path, "--dropout", "0.1")


def test_generate_is_reproducible_and_streams(tiny_run, capsys):
    out, _, _ = tiny_run
    # 6 + 26 tokens fill the tiny context (32) exactly: past it the two paths see different windows
    # (the cache restarts from the last half), so only up to it must they agree token for token.
    flags = ["--checkpoint", str(out), "--prompt", "ROMEO:", "--max_new_tokens", "26", "--seed", "5"]
    first = stage5_generate.main(flags)
    second = stage5_generate.main([*flags, "--no-kv_cache"])
    assert first == second and len(first[0]) == 26
    assert "ROMEO:" + first[0] in capsys.readouterr().out


def test_interactive_generation_and_unknown_characters(tiny_run, capsys, monkeypatch):
    out, _, _ = tiny_run
    monkeypatch.setattr(sys, "stdin", io.StringIO("JULIET:\n\nnever read\n"))  # one prompt, then an empty line
    texts = stage5_generate.main(["--checkpoint", str(out), "--interactive", "--max_new_tokens", "10"])
    assert len(texts) == 1 and len(texts[0]) == 10 and "JULIET:" + texts[0] in capsys.readouterr().out
    bad = run_cli("stage5_gpt.generate", "--checkpoint", str(out), "--prompt", "naïve 你好")
    one_error(bad, 1, "not in the vocabulary: 'ï', '你', '好'")  # generate as a user runs it


def test_evaluate_and_info(tiny_run):
    out, record, _ = tiny_run
    whole = stage5_evaluate.main(["--checkpoint", str(out)])
    # train scored --final_eval_tokens of val (the tiny preset: 4k); evaluate, the whole split by default
    part = stage5_evaluate.main(["--checkpoint", str(out), "--max_tokens", str(PRESETS["tiny"]["final_eval_tokens"])])
    assert part["val_loss"] == pytest.approx(record["val_loss"], abs=1e-4)  # the final score train recorded
    assert whole["val_loss"] != part["val_loss"]
    report = stage5_info.main(["--preset", "gpt2"])
    assert 124e6 < report["parameters"] < 125e6  # GPT-2 small with a 50304-row (padded) embedding
    # docs/stage5_gpt.md section 6: the Tiny Shakespeare presets train on about 2 and 4 tokens per parameter
    assert 1.5 < stage5_info.main(["--preset", "cpu"])["training tokens per parameter"] < 2.5
    assert 3.5 < stage5_info.main(["--preset", "gpu"])["training tokens per parameter"] < 4.5


def test_bad_inputs_fail_with_one_sentence(tmp_path, capsys):
    done = run_cli("stage5_gpt.train", "--dataset", "text_file", "--text_file", str(tmp_path / "nope.txt"),
                   "--out_dir", str(tmp_path / "run"))
    one_error(done, 1, "does not exist")  # train as a user runs it
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with one_sentence("is damaged"):
        stage5_generate.main(["--checkpoint", str(tmp_path / "broken.pt")])
    for main, argv, message in [
        (stage5_train.main, ["--dataset", "text_file"], "--dataset text_file needs --text_file"),
        (stage5_train.main, ["--n_embd", "30", "--n_head", "4"], "must be divisible by --n_head"),
        (stage5_train.main, ["--flash"], "unknown flag"),
        (stage5_generate.main, ["--top_p", "0"], "--top_p must be in (0, 1]"),
    ]:
        refused_flag(main, argv, message, capsys)


def test_init_from_a_run_continues_from_its_weights(tiny_run, tmp_path):
    out, record, _ = tiny_run
    again = stage5_train.main(["--preset", "tiny", "--init_from", str(out), "--max_steps", "1", "--lr", "1e-9",
                               "--out_dir", str(tmp_path / "again")])
    assert again["val_loss"] == pytest.approx(record["val_loss"], abs=1e-3)  # one step at lr 1e-9 changes nothing
    with pytest.raises(UserError, match="tokenizer"):
        stage5_train.main(["--preset", "tiny", "--init_from", str(out), "--dataset", "the_verdict",
                           "--out_dir", str(tmp_path / "other")])


def test_own_text_file_trains_with_gpt2_bpe(tmp_path):
    text = tmp_path / "story.txt"
    text.write_text("Once upon a time there was a tiny model that learned to write. " * 200, encoding="utf-8")
    record = stage5_train.main(["--preset", "tiny", "--dataset", "text_file", "--text_file", str(text),
                                "--max_steps", "30", "--out_dir", str(tmp_path / "run")])
    assert record["tokenizer"] == "gpt2" and record["val_loss"] < 8


def test_ddp_two_processes_match_one_with_the_same_global_batch(tmp_path):
    flags = ["--preset", "tiny", "--device", "cpu", "--max_steps", "6", "--log_interval", "1", "--eval_interval", "6",
             "--dropout", "0"]
    stage5_train.main([*flags, "--batch_size", "8", "--out_dir", str(tmp_path / "one")])  # one process: here
    with socket.socket() as free:  # a port no other program (or a second test run) is listening on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                          "127.0.0.1", "--master_port", str(port), "-m", "stage5_gpt.train", *flags, "--batch_size",
                          "4", "--out_dir", str(tmp_path / "two")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = [r["train_loss"] for r in read_history(tmp_path / "one" / "history.csv")]
    two = [r["train_loss"] for r in read_history(tmp_path / "two" / "history.csv")]
    assert len(one) == len(two) == 6
    assert one == pytest.approx(two, abs=1e-4)
