"""The shared sampling helpers: temperature, top-k and top-p give zero probability where they should."""

import pytest
import torch

from shared.cli import ConfigError
from shared.sampling import check_sampling, next_token_probs, sample_next

LOGITS = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])


def test_top_k_keeps_only_the_k_most_likely_tokens():
    probs = next_token_probs(LOGITS, temperature=1.0, top_k=2)
    assert (probs[0, 2:] == 0).all() and (probs[0, :2] > 0).all()
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0))
    # Renormalised over the survivors: same ratio as in the full softmax.
    torch.testing.assert_close(probs[0, 0] / probs[0, 1], torch.exp(torch.tensor(1.0)))


def test_top_p_keeps_the_smallest_set_holding_p_of_the_mass():
    full = torch.softmax(LOGITS, dim=-1)[0]  # 0.574, 0.211, 0.128, 0.078, ...
    probs = next_token_probs(LOGITS, temperature=1.0, top_p=0.7)[0]
    assert full[0] < 0.7 <= full[0] + full[1]
    assert (probs[:2] > 0).all() and (probs[2:] == 0).all()
    # A tiny p still keeps the most likely token.
    assert next_token_probs(LOGITS, top_p=1e-6)[0].tolist() == [1.0, 0, 0, 0, 0, 0]


def test_temperature_sharpens_and_zero_is_greedy():
    cold = next_token_probs(LOGITS, temperature=0.5)[0]
    warm = next_token_probs(LOGITS, temperature=2.0)[0]
    assert cold[0] > torch.softmax(LOGITS, -1)[0, 0] > warm[0]
    assert sample_next(LOGITS.repeat(3, 1), temperature=0).flatten().tolist() == [0, 0, 0]


def test_sampling_is_reproducible_with_a_seeded_generator():
    draws = [sample_next(LOGITS.repeat(20, 1), generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    never = sample_next(LOGITS.repeat(2000, 1), top_k=3, generator=torch.Generator().manual_seed(0))
    assert never.max() <= 2


@pytest.mark.parametrize("args, message", [((-1, 0, 1.0), "temperature"), ((1, -2, 1.0), "top_k"),
                                           ((1, 0, 0.0), "top_p"), ((1, 0, 1.5), "top_p")])
def test_invalid_sampling_settings_are_rejected(args, message):
    with pytest.raises(ConfigError, match=message):
        check_sampling(*args)
