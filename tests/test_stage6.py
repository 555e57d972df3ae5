"""Stage 6's model: frozen parts stay frozen, LoRA starts as a no-op and merges exactly, padding is harmless."""

import pytest
import torch

from stage5_gpt.model import GPT, GPTConfig
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
