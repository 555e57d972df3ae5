"""Every preset of every stage builds its model (on the meta device: shapes only, no memory, no
training), and the parameter counts the READMEs quote are the ones the presets give."""

import pytest
import torch

from shared.cli import model_config, parse_config
from stage1_mlp.config import PRESETS as S1
from stage1_mlp.config import MLPConfig
from stage1_mlp.train import build_model as build_mlp
from stage2_rnn_lstm.config import PRESETS as S2
from stage2_rnn_lstm.config import RNNTrainConfig
from stage2_rnn_lstm.model import RecurrentLM, RNNConfig
from stage3_attention_seq2seq.config import PRESETS as S3
from stage3_attention_seq2seq.config import Seq2SeqTrainConfig
from stage3_attention_seq2seq.model import Seq2Seq, Seq2SeqConfig
from stage4_transformer.config import PRESETS as S4
from stage4_transformer.config import TransformerTrainConfig
from stage4_transformer.model import Transformer, TransformerConfig
from stage5_gpt.config import PRESETS as S5
from stage5_gpt.config import GPTTrainConfig
from stage5_gpt.model import GPT
from stage6_finetune_cls.model import GPTClassifier, set_trainable, trainable_parameters

# Vocabulary sizes the data gives (each stage prints them when it trains).
CHARS = 69  # Tiny Shakespeare's 65 characters + 4 specials
WIKITEXT_WORDS = 33_280
MULTI30K_EN, MULTI30K_FR = 6_198, 6_522  # en -> fr, words seen twice or more in train
GPT2_PADDED = 50_304
STORYBOOK_BPE = 8_192  # the BPE stage 5 learns on the storybooks by default


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(build):
    with torch.device("meta"):
        return build()


@pytest.mark.parametrize("preset", list(S1))
def test_stage1_presets_build(preset):
    cfg = parse_config(MLPConfig, S1, ["--preset", preset])
    rows = 20_000 + cfg.hash_buckets  # words + hashed n-grams
    model = on_meta(lambda: build_mlp(cfg, rows, 6))
    hidden = cfg.hidden_dim if cfg.num_layers else cfg.embed_dim
    mlp = sum((a + 1) * b for a, b in zip([cfg.embed_dim] + [cfg.hidden_dim] * (cfg.num_layers - 1),
                                          [cfg.hidden_dim] * cfg.num_layers))
    assert count(model) == rows * cfg.embed_dim + mlp + (hidden + 1) * 6


@pytest.mark.parametrize("preset", list(S2))
@pytest.mark.parametrize("vocab_type", ["char", "word"])
def test_stage2_presets_build(preset, vocab_type):
    cfg = parse_config(RNNTrainConfig, S2, ["--preset", preset, "--vocab_type", vocab_type])
    vocab = CHARS if vocab_type == "char" else WIKITEXT_WORDS
    model = on_meta(lambda: RecurrentLM(model_config(RNNConfig, cfg, vocab_size=vocab)))
    documented = {("cpu", "char"): 3.3e6, ("cpu", "word"): 9.6e6}  # stage2_rnn_lstm/README.md
    if (preset, vocab_type) in documented:
        assert count(model) == pytest.approx(documented[preset, vocab_type], rel=0.02)


@pytest.mark.parametrize("preset", list(S3))
def test_stage3_presets_build(preset):
    cfg = parse_config(Seq2SeqTrainConfig, S3, ["--preset", preset])
    model = on_meta(lambda: Seq2Seq(model_config(Seq2SeqConfig, cfg, src_vocab=MULTI30K_EN, tgt_vocab=MULTI30K_FR)))
    if preset == "cpu":
        assert count(model) == 9_089_402  # stage3_attention_seq2seq/README.md, en -> fr


@pytest.mark.parametrize("preset", list(S4))
def test_stage4_presets_build(preset):
    cfg = parse_config(TransformerTrainConfig, S4, ["--preset", preset])
    model = on_meta(lambda: Transformer(model_config(TransformerConfig, cfg, src_vocab=MULTI30K_EN,
                                                     tgt_vocab=MULTI30K_FR)))
    if preset == "cpu":
        assert count(model) == pytest.approx(7.2e6, rel=0.02)  # stage4_transformer/README.md, en -> fr


@pytest.mark.parametrize("preset", list(S5))
def test_stage5_presets_build(preset):
    cfg = parse_config(GPTTrainConfig, S5, ["--preset", preset])
    vocab = CHARS if cfg.tokenizer_name == "char" else GPT2_PADDED
    model = on_meta(lambda: GPT(cfg.model_config(vocab)))
    documented = {"cpu": 0.8e6, "gpu": 10.6e6, "gpt2": 124e6, "gpt2-medium": 354e6}  # stage5_gpt/README.md
    if preset in documented:
        assert model.num_params() == pytest.approx(documented[preset], rel=0.02)
    storybooks = parse_config(GPTTrainConfig, S5, ["--preset", preset, "--dataset", "gutenberg_children"])
    assert storybooks.tokenizer_name == "bpe" and storybooks.vocab_size == 0  # 0: the default 8,192
    model = on_meta(lambda: GPT(storybooks.model_config(STORYBOOK_BPE)))
    documented = {"cpu": 5.25e6, "gpu": 13.8e6}  # stage5_gpt/README.md, the storybook rows
    if preset in documented:
        assert model.num_params() == pytest.approx(documented[preset], rel=0.01)


def test_stage6_trainable_parts_of_the_pretrained_cpu_gpt():
    """Stage 6's starting point, the stage 5 cpu preset on the storybooks with its 8k BPE: 5.31M parameters,
    and LoRA r=8 trains 131.6k."""
    cfg = parse_config(GPTTrainConfig, S5, ["--preset", "cpu", "--dataset", "gutenberg_children"])
    gpt_config = cfg.model_config(STORYBOOK_BPE)
    assert count(on_meta(lambda: GPT(gpt_config))) == 5_310_720  # 5.25M without the 256 x 256 position embedding
    trained = {}
    for mode in ("head", "last_block", "last_two_blocks", "all", "lora"):
        model = on_meta(lambda: GPTClassifier(GPT(gpt_config), 2))
        set_trainable(model, mode, lora_rank=8, lora_alpha=16.0)
        trained[mode] = trainable_parameters(model)
    assert trained["head"] < trained["lora"] < trained["last_block"] < trained["last_two_blocks"] < trained["all"]
    assert trained["lora"] == 131_586  # stage6_finetune_cls/README.md (with the head)
