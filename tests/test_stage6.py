"""Stage 6: frozen parts stay frozen, LoRA starts as a no-op and merges exactly, padding is harmless, and
the train / evaluate / classify / baseline commands work (on a tiny GPT the tests pretrain themselves)."""

import pytest
import torch
from helpers import run_cli
from test_robustness import one_error

from shared.cli import UserError
from stage5_gpt import train as stage5_train
from stage5_gpt.model import GPT, GPTConfig
from stage6_finetune_cls import baseline as stage6_baseline
from stage6_finetune_cls import classify as stage6_classify
from stage6_finetune_cls import evaluate as stage6_evaluate
from stage6_finetune_cls import train as stage6_train
from stage6_finetune_cls.data import ShuffledBatches, load_encoded
from stage6_finetune_cls.model import GPTClassifier, LoRALinear, merge_lora, set_trainable, trainable_parameters

CFG = GPTConfig(vocab_size=60, block_size=24, n_layer=3, n_head=2, n_embd=16)


def make(mode, seed=0):
    torch.manual_seed(seed)
    model = GPTClassifier(GPT(CFG), num_classes=2)
    set_trainable(model, mode, lora_rank=4, lora_alpha=8)
    return model


def batch():
    idx = torch.randint(0, 60, (4, 10))
    lengths = torch.tensor([10, 7, 3, 9])
    return idx, lengths, torch.tensor([0, 1, 1, 0])


@pytest.mark.parametrize("mode", ["head", "last_block", "last_two_blocks", "all", "lora"])
def test_frozen_parameters_do_not_change_after_a_step(mode):
    model = make(mode)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    idx, lengths, labels = batch()
    torch.nn.functional.cross_entropy(model(idx, lengths), labels).backward()
    optimizer.step()
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p)
        assert changed == p.requires_grad, f"{mode}: {name} changed={changed} trainable={p.requires_grad}"
    if mode == "last_block":
        assert model.gpt.transformer.h[-1].attn.c_attn.weight.requires_grad
        assert not model.gpt.transformer.h[-2].attn.c_attn.weight.requires_grad


def test_trainable_parameter_counts_grow_from_head_to_all():
    counts = [trainable_parameters(make(mode)) for mode in ["head", "last_block", "last_two_blocks", "all"]]
    assert counts == sorted(counts) and counts[0] == 16 * 2 + 2
    assert trainable_parameters(make("lora")) < counts[1]


def test_lora_starts_as_the_base_model_and_merges_exactly():
    base, lora = make("head"), make("lora")
    idx, lengths, _ = batch()
    torch.testing.assert_close(lora(idx, lengths), base(idx, lengths), rtol=0, atol=1e-6)  # B = 0
    with torch.no_grad():
        for module in lora.modules():
            if isinstance(module, LoRALinear):
                module.lora_B.normal_(0, 0.1)  # as if trained
    adapted = lora(idx, lengths)
    assert merge_lora(lora) == 4 * CFG.n_layer
    assert not any(isinstance(m, LoRALinear) for m in lora.modules())
    torch.testing.assert_close(lora(idx, lengths), adapted, rtol=0, atol=1e-5)


def test_padding_does_not_change_a_prediction():
    model = make("all").eval()
    ids = torch.randint(1, 60, (1, 6))
    padded = torch.cat([ids, torch.full((1, 9), 50256 % 60)], dim=1)
    torch.testing.assert_close(model(ids, torch.tensor([6])), model(padded, torch.tensor([6])), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny GPT pretrained (for seconds) on The Verdict with a BPE it learns itself (400 tokens): stands
    in for the storybook one. Stage 6 must read the tokenizer from the checkpoint."""
    out = tmp_path_factory.mktemp("runs") / "stage5"
    stage5_train.main(["--preset", "tiny", "--dataset", "the_verdict", "--tokenizer", "bpe", "--vocab_size", "400",
                       "--max_steps", "30", "--out_dir", str(out)])
    return out


@pytest.fixture(scope="module")
def finetuned(pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stage6"
    record = stage6_train.main(["--preset", "tiny", "--init_from", str(pretrained), "--trainable", "all",
                                "--out_dir", str(out)])
    return out, record


def test_data_pads_to_the_longest_train_message_cut_to_the_context(pretrained):
    model, tokenizer, _ = stage5_train.load_model(pretrained)
    data, names, max_length = load_encoded(tokenizer, model.cfg.block_size)
    assert names == ["ham", "spam"] and [len(data[s]) for s in ("train", "val", "test")] == [1045, 149, 300]
    assert max_length == model.cfg.block_size  # the longest SMS is longer than the tiny context
    assert data["train"].ids.shape == (1045, max_length) and data["train"].lengths.max() == max_length
    ids, lengths, labels = ShuffledBatches(data["train"], 8, 0, torch.device("cpu"))(0)
    assert ids.shape == (8, int(lengths.max())) and labels.shape == (8,)


def test_the_tokenizer_comes_from_the_checkpoint_and_sst2_holds_out_glue_dev(pretrained, tmp_path):
    from shared.classification_data import load_classification

    model, tokenizer, _ = stage5_train.load_model(pretrained)
    assert tokenizer.kind == "bpe" and tokenizer.size == model.cfg.vocab_size == 400
    splits = load_classification("sst2")
    assert splits["train"].label_names == ["negative", "positive"] and len(splits["test"]) == 872  # GLUE's dev set
    assert len(splits["train"]) + len(splits["val"]) == 67349 and 0.04 < len(splits["val"]) / 67349 < 0.06
    record = stage6_train.main(["--preset", "tiny", "--task", "sst2", "--init_from", str(pretrained),
                                "--max_steps", "4", "--out_dir", str(tmp_path)])
    assert record["dataset"] == "sst2" and sum(map(sum, record["test_confusion_matrix"])) == 872


def test_the_learned_tokenizer_travels_with_the_model(pretrained, capsys):
    from shared.cli import UserError
    from stage5_gpt import evaluate as stage5_evaluate
    from stage5_gpt import generate as stage5_generate

    texts = stage5_generate.main(["--checkpoint", str(pretrained), "--prompt", "I had always", "--max_new_tokens", "12",
                                  "--device", "cpu"])
    assert texts[0] and capsys.readouterr().out.startswith("I had always" + texts[0])
    assert stage5_evaluate.main(["--checkpoint", str(pretrained), "--device", "cpu"])["val_bits_per_byte"] > 0
    # Another text gets its own learned BPE: this model's ids would mean other tokens there.
    with pytest.raises(UserError, match="tokenizer does not match tinyshakespeare"):
        stage5_evaluate.main(["--checkpoint", str(pretrained), "--dataset", "tinyshakespeare", "--device", "cpu"])


def test_tiny_preset_beats_chance_and_records_the_run(finetuned):
    _, record = finetuned
    assert record["test_accuracy"] > 0.6
    assert record["trainable_params"] == record["params"] and record["trainable"] == "all"


def test_evaluate_and_classify(finetuned, capsys):
    out, record = finetuned
    results = stage6_evaluate.main(["--checkpoint", str(out), "--device", "cpu"])
    assert results["test"]["accuracy"] == pytest.approx(record["test_accuracy"])
    message = "You won a prize! Call now"
    label, prob = stage6_classify.main([message, "--checkpoint", str(out)])
    # The same message through the model by hand: classify reports its most likely label and that probability.
    model, tokenizer, names, max_length, _ = stage6_evaluate.load_classifier(out)
    ids = torch.tensor([tokenizer.encode(message)[:max_length]])
    with torch.no_grad():
        probs = torch.softmax(model(ids, torch.tensor([ids.size(1)])), dim=-1)[0]
    assert label == names[int(probs.argmax())] and prob == pytest.approx(float(probs.max()), abs=1e-5)


def test_lora_run_saves_adapters_that_load_back(pretrained, tmp_path):
    record = stage6_train.main(["--preset", "tiny", "--init_from", str(pretrained), "--trainable", "lora",
                                "--max_steps", "20", "--out_dir", str(tmp_path)])
    # r (d_in + d_out) per adapted matrix (c_attn, attn c_proj, c_fc, mlp c_proj) in 2 blocks of 32 dims, + the head
    assert record["trainable_params"] == 2 * 8 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32)) + (32 * 2 + 2)
    results = stage6_evaluate.main(["--checkpoint", str(tmp_path), "--split", "test", "--device", "cpu"])
    assert results["test"]["accuracy"] == pytest.approx(record["test_accuracy"])


def test_random_init_keeps_the_shape_and_the_baseline_records(pretrained, tmp_path):
    record = stage6_train.main(["--preset", "tiny", "--init_from", "random", "--random_shape", "1,2,16,32",
                                "--max_steps", "5", "--out_dir", str(tmp_path / "random")])
    assert record["model"].startswith("GPT random init")
    base = stage6_baseline.main(["--out_dir", str(tmp_path / "base")])
    assert base["test_accuracy"] > 0.9


def test_missing_pretrained_model_says_how_to_make_it(tmp_path):
    done = run_cli("stage6_finetune_cls.train", "--preset", "tiny", cwd=tmp_path)  # no runs/ there
    one_error(done, 1, "make pretrain")  # train as a user runs it


def test_a_character_level_stage5_model_is_refused_in_one_sentence(tmp_path):
    char_model = tmp_path / "char"
    stage5_train.main(["--preset", "tiny", "--dataset", "the_verdict", "--tokenizer", "char", "--max_steps", "2",
                       "--eval_interval", "0", "--out_dir", str(char_model)])
    with pytest.raises(UserError, match="is a character-level stage 5 model: it reads one character at a time"):
        stage6_train.main(["--preset", "tiny", "--init_from", str(char_model), "--out_dir", str(tmp_path / "cls")])
    assert not (tmp_path / "cls" / "best.pt").exists()
