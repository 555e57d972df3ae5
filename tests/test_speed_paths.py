"""The fast paths of issue 30 compute what the written-out ones do: the chunked head and loss against
F.cross_entropy, bf16 chosen only where the CPU has it, MFU's FLOP count against the model's weights,
the measured peak leaving the run's random stream alone, continued pretraining on a task's texts."""

import pytest
import torch
import torch.nn.functional as F

from shared import devices, flops
from shared.cli import ConfigError
from stage5_gpt.chunked_loss import CHUNK, chunked_lm_loss
from stage5_gpt.model import GPT, GPTConfig


def _reference_and_chunked(n: int, autocast: bool, ignored: int = 0):
    torch.manual_seed(0)
    hidden = torch.randn(n, 24, requires_grad=True)
    weight = torch.randn(50, 24, requires_grad=True)
    targets = torch.randint(0, 50, (n,))
    targets[:ignored] = -100
    results = []
    for fn in (lambda: F.cross_entropy(F.linear(hidden, weight).float(), targets),
               lambda: chunked_lm_loss(hidden, weight, targets)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = fn()
        results.append((loss, *torch.autograd.grad(loss, (hidden, weight))))
    return results


@pytest.mark.parametrize("n", [7, CHUNK, 2 * CHUNK + 5])  # one partial chunk, exactly one, several
def test_chunked_loss_and_gradients_equal_cross_entropy_in_fp32(n):
    (ref, ref_dh, ref_dw), (got, dh, dw) = _reference_and_chunked(n, autocast=False, ignored=3)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dh, ref_dh, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(dw, ref_dw, rtol=1e-5, atol=1e-7)


def test_chunked_loss_under_bf16_autocast_matches_the_bf16_reference():
    (ref, ref_dh, ref_dw), (got, dh, dw) = _reference_and_chunked(300, autocast=True)
    assert got.dtype == torch.float32 and dh.dtype == dw.dtype == torch.float32  # the master weights' dtype
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    assert (dh - ref_dh).abs().max() <= 0.02 * ref_dh.abs().max()  # bf16 products summed in another order
    assert (dw - ref_dw).abs().max() <= 0.02 * ref_dw.abs().max()


def test_chunked_loss_with_every_target_ignored_is_zero_not_nan():
    hidden = torch.randn(5, 8, requires_grad=True)
    loss = chunked_lm_loss(hidden, torch.randn(11, 8), torch.full((5,), -100))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(hidden.grad) == 0


def test_a_gpt_with_the_chunked_loss_trains_as_the_full_one():
    cfg = dict(vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=16)
    idx, targets = torch.randint(0, 97, (3, 16)), torch.randint(0, 97, (3, 16))
    grads = []
    for lm_loss in ("full", "chunked"):
        torch.manual_seed(0)
        model = GPT(GPTConfig(**cfg, lm_loss=lm_loss))
        logits, loss = model(idx, targets)
        assert (logits is None) == (lm_loss == "chunked")  # the point: the logits are never made whole
        loss.backward()
        grads.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(grads[1][0], grads[0][0])
    for name, grad in grads[0][1].items():
        torch.testing.assert_close(grads[1][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_amp_auto_picks_bf16_only_on_a_cpu_that_has_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_bf16_features", lambda: ["avx512_bf16"])
    assert devices.resolve_amp("auto", cpu) == torch.bfloat16
    assert devices.describe_amp("auto", cpu, torch.bfloat16) == "amp bf16 (auto: this CPU has avx512_bf16)"
    assert devices.resolve_amp("off", cpu) is None
    monkeypatch.setattr(devices, "cpu_bf16_features", lambda: [])
    assert devices.resolve_amp("auto", cpu) is None
    assert devices.describe_amp("auto", cpu, None) == "amp off (fp32) (auto: this CPU has no native bf16)"
    assert devices.resolve_amp("bf16", cpu) == torch.bfloat16  # asked for by name: given


def test_the_course_numbers_of_stages_1_to_4_stay_fp32_on_any_cpu():
    import importlib

    for stage in ("stage1_mlp", "stage2_rnn_lstm", "stage3_attention_seq2seq", "stage4_transformer"):
        config = importlib.import_module(f"{stage}.config")
        for name in ("PRESETS", "CLASSIFIER_PRESETS"):
            presets = getattr(config, name, {})
            assert all(presets[p]["amp"] == "off" for p in ("tiny", "cpu") if p in presets), (stage, name)
            assert "gpu" not in presets or presets["gpu"].get("amp", "auto") == "auto", (stage, name)


def test_flops_per_token_counts_six_per_weight_plus_attention():
    model = GPT(GPTConfig(vocab_size=101, block_size=32, n_layer=3, n_head=2, n_embd=16, bias=False))
    C, L, T = 16, 3, 32
    matmul_weights = L * sum(k * n for _, k, n in model.matmul_shapes(1)[:4]) + C * 101  # blocks + tied lm_head
    norm_gains = (2 * L + 1) * C
    assert model.num_params() == matmul_weights + norm_gains
    assert model.flops_per_token(T) == 6 * (matmul_weights + norm_gains) + 12 * L * C * T


def test_the_measured_peak_is_positive_and_leaves_the_random_stream_alone():
    state = torch.get_rng_state()
    rate, shape = flops.peak_gflops([(64, 32, 16), (128, 64, 64)], seconds=0.01)
    assert rate > 0 and shape in [(64, 32, 16), (128, 64, 64)]
    assert torch.equal(torch.get_rng_state(), state)


def test_compile_on_a_cpu_without_a_compiler_is_one_sentence(monkeypatch, tmp_path):
    import shared.run
    from stage5_gpt.config import PRESETS, GPTTrainConfig

    monkeypatch.setattr(shared.run.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="no C\\+\\+ compiler .* --no-compile"):
        shared.run.Run.start("stage5_gpt", GPTTrainConfig, PRESETS,
                             ["--preset", "tiny", "--compile", "--device", "cpu", "--out_dir", str(tmp_path)], "")


def test_stage5_records_mfu_against_the_peak_it_measured(tmp_path):
    from stage5_gpt import train as stage5_train

    record = stage5_train.main(["--preset", "tiny", "--max_steps", "10", "--out_dir", str(tmp_path)])
    model, _, _ = stage5_train.load_model(tmp_path)
    assert record["flops_per_token"] == model.flops_per_token(32) and record["peak_gflops"] > 0
    expected = record["tokens_per_sec"] * record["flops_per_token"] / (record["peak_gflops"] * 1e9)
    assert record["mfu"] == pytest.approx(expected, rel=0.01, abs=1e-4) and 0 < record["mfu"] < 1
    assert record["amp"] == "off" and record["attention"] == "sdpa"


def test_adapting_to_the_task_texts_lowers_their_loss_before_finetuning(tmp_path):
    from stage5_gpt import train as stage5_train
    from stage6_finetune_cls import train as stage6_train
    from stage6_finetune_cls.config import FinetuneConfig

    stage5 = tmp_path / "stage5"
    stage5_train.main(["--preset", "tiny", "--dataset", "the_verdict", "--tokenizer", "bpe", "--vocab_size", "300",
                       "--max_steps", "20", "--out_dir", str(stage5)])
    record = stage6_train.main(["--preset", "tiny", "--init_from", str(stage5), "--adapt_steps", "40",
                                "--adapt_lr", "3e-3", "--max_steps", "5", "--out_dir", str(tmp_path / "stage6")])
    assert record["adapt_steps"] == 40 and record["adapt_tokens"] == 40 * 16 * 32
    assert record["adapt_val_lm_loss_after"] < record["adapt_val_lm_loss_before"] - 0.3
    assert "+ 40 steps on the task's texts" in record["model"]
    assert FinetuneConfig(adapt_steps=300).run_dir("s6").name == "pretrained-adapt300-last_block-cpu"
