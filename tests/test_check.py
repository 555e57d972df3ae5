"""The build-it-yourself checker: it passes the reference, fails the untouched stubs, catches the
classic mistakes with a message that says what differs, and `--yours` trains exactly like the
reference when given the reference's code. The learner's parts reach the model as `Parts`: a model
built with one part that raises fails on the path that part is written for, and `--yours` runs
the learner's code (stage 2's tbptt_step in training, stage 5's filters in generate)."""

import hashlib
import importlib
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import last_line, run_cli

from shared.check import STAGES, load_yours, run_checks, stage_parts
from shared.check import main as check_main
from shared.cli import UserError
from shared.records import read_history

# A file "with the reference copied in": each stage's parts, imported from where the stage defines them.
REFERENCE = {
    "stage1_mlp": "from stage1_mlp.data import bag_of_ngrams\nfrom stage1_mlp.model import masked_mean\n",
    "stage2_rnn_lstm": "from stage2_rnn_lstm.model import gru_cell, lstm_cell, rnn_cell, tbptt_step\n",
    "stage3_attention_seq2seq": "from shared.beam import greedy_step\n"
                                "from stage3_attention_seq2seq.model import additive_attention, "
                                "multiplicative_attention\n",
    "stage4_transformer": "from stage4_transformer.model import encoder_layer, multi_head_attention, "
                          "scaled_dot_product_attention, sinusoidal_positions\n",
    "stage5_gpt": "from shared.sampling import top_k_filter, top_p_filter\n"
                  "from stage5_gpt.model import causal_self_attention, init_gpt2, kv_cache_update\n",
    "stage6_finetune_cls": "from stage6_finetune_cls.model import freeze, last_token, lora_forward, "
                           "lora_merged_weight\n",
    "stage7_instruct": "from stage7_instruct.model import dpo_loss, masked_lm_loss, render_chat, sequence_logprob\n",
}


def reference_file(tmp_path, stage: str) -> Path:
    path = tmp_path / f"{stage}_reference.py"
    path.write_text(REFERENCE[stage] + "# noqa\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("stage", list(STAGES.values()))
def test_the_reference_passes_every_part(stage, tmp_path):
    results = run_checks(stage, *load_yours(stage, reference_file(tmp_path, stage)))
    assert [r.status for r in results] == ["passed"] * len(stage_parts(stage)), results


@pytest.mark.parametrize("stage", list(STAGES.values()))
def test_the_untouched_stubs_fail_every_part_as_not_implemented(stage):
    results = run_checks(stage, *load_yours(stage))
    assert len(results) >= 2 and all(r.status == "not implemented yet" for r in results), results


MISTAKES = [  # (stage, part, the wrong code, words the message must contain)
    ("stage7_instruct", "render_chat", """
        def render_chat(turns, tokenizer, mask_prompt=True):
            ids, mask = [], []
            for role, text in turns:
                if role == "user":
                    part = [tokenizer.user] + tokenizer.encode(text)
                else:
                    part = [tokenizer.assistant] + tokenizer.encode(text) + [tokenizer.end]
                ids += part
                mask += [True] * len(part)  # mask_prompt forgotten: the prompt is supervised too
            if turns[-1][0] == "user":
                ids, mask = ids + [tokenizer.assistant], mask + [True]
            mask[0] = False
            return ids, mask
        """, "the prompt is in the loss"),
    ("stage7_instruct", "masked_lm_loss", """
        def masked_lm_loss(logits, ids, mask):
            w = mask[:, :-1].float()  # the input's mask, not the target's
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1),
                                                    reduction="none").view_as(w)
            return (nll * w).sum() / w.sum().clamp(min=1)
        """, "the mask is shifted by one"),
    ("stage7_instruct", "dpo_loss", """
        def dpo_loss(pc, pr, rc, rr, beta):
            chosen, rejected = pc - rc, pr - rr  # the reference not detached
            loss = -torch.nn.functional.logsigmoid(beta * (chosen - rejected)).mean()
            return loss, (beta * chosen).detach(), (beta * rejected).detach()
        """, "the reference model is left trainable"),
    ("stage7_instruct", "dpo_loss", """
        def dpo_loss(pc, pr, rc, rr, beta):
            chosen, rejected = beta * (pc - rc.detach()), beta * (pr - rr.detach())
            loss = -torch.nn.functional.logsigmoid(beta * (chosen - rejected)).mean()  # beta again
            return loss, chosen.detach(), rejected.detach()
        """, "beta is applied twice"),
    ("stage4_transformer", "scaled_dot_product_attention", """
        def scaled_dot_product_attention(q, k, v, mask=None):
            scores = q @ k.transpose(-2, -1)  # no 1/sqrt(dh)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            w = torch.softmax(scores, dim=-1)
            return w @ v, w
        """, "values differ"),
    ("stage4_transformer", "scaled_dot_product_attention", """
        def scaled_dot_product_attention(q, k, v, mask=None):
            scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            w = torch.softmax(scores, dim=-2)  # over the queries
            return w @ v, w
        """, "values differ"),
    ("stage4_transformer", "scaled_dot_product_attention", """
        def scaled_dot_product_attention(q, k, v, mask=None):
            w = torch.softmax(q @ k.transpose(-2, -1) / q.size(-1) ** 0.5, dim=-1)  # the mask forgotten
            return w @ v, w
        """, "a masked position leaked"),
    ("stage4_transformer", "multi_head_attention", """
        from stage4_transformer.model import scaled_dot_product_attention
        def multi_head_attention(q, k, v, mask, n_heads, attend):
            B, T, d = q.shape
            split = lambda x: x.view(B, x.size(1), n_heads, d // n_heads).transpose(1, 2)
            out, _ = scaled_dot_product_attention(split(q), split(k), split(v), mask)  # not attend: no dropout
            return out.transpose(1, 2).reshape(B, T, d)
        """, "calling scaled_dot_product_attention yourself skips that dropout"),
    ("stage4_transformer", "encoder_layer", """
        def encoder_layer(layer, x, mask):
            h = layer.norm1(x)
            x = x + layer.self_attn(h, h, mask)  # layer.drop forgotten: the same in eval mode only
            return x + layer.drop(layer.ffn(layer.norm2(x)))
        """, "output in train mode, dropout 0.3"),
    ("stage1_mlp", "bag_of_ngrams", """
        from shared.tokenizers import UNK_ID
        from stage1_mlp.data import ngram_bucket
        def bag_of_ngrams(words, vocab, ngrams, hash_buckets):
            ids = [vocab.get(w, UNK_ID) for w in words]
            for n in range(2, ngrams + 1):  # no boundary marks: the first and last words lose an n-gram each
                ids += [len(vocab) + ngram_bucket(words[i:i + n], hash_buckets) for i in range(len(words) - n + 1)]
            return ids or [UNK_ID]
        """, "the first difference is at position"),
    ("stage3_attention_seq2seq", "additive_attention", """
        def additive_attention(s, keys, values, mask, W, v):
            e = torch.tanh((s @ W.t())[:, None, :] + keys) @ v
            a = torch.softmax(e, dim=-1)  # the padding is not masked
            return (a[:, :, None] * values).sum(1), a
        """, "a masked position leaked"),
    ("stage4_transformer", "sinusoidal_positions", """
        def sinusoidal_positions(n, d):
            angle = torch.arange(n)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
            pe = torch.zeros(n, d)
            pe[:, 0::2], pe[:, 1::2] = torch.cos(angle), torch.sin(angle)  # sin and cos swapped
            return pe
        """, "the even columns hold cos and the odd ones sin"),
    ("stage6_finetune_cls", "last_token", """
        def last_token(hidden, lengths):
            return hidden[:, -1]  # the last position, padding or not
        """, "padding included: row b's last real token is at lengths[b] - 1"),
    ("stage6_finetune_cls", "freeze", """
        def freeze(model, mode):
            model.requires_grad_(mode == "all")
            if mode in ("last_block", "last_two_blocks"):
                model.gpt.transformer.h[-1 if mode == "last_block" else -2:].requires_grad_(True)
            model.head.requires_grad_(True)  # ln_f forgotten
        """, "these should train: gpt.transformer.ln_f"),
    ("stage6_finetune_cls", "lora_merged_weight", """
        def lora_merged_weight(layer):
            return layer.base.weight + layer.lora_B @ layer.lora_A  # the scale forgotten
        """, "without the scale"),
    ("stage7_instruct", "sequence_logprob", """
        def sequence_logprob(logits, ids, mask):
            picked = torch.log_softmax(logits.float(), dim=-1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
            return (picked * mask[:, 1:]).sum(-1) / mask[:, 1:].sum(-1)  # a mean, not the sum
        """, "that is the mean over the response tokens"),
    ("stage5_gpt", "causal_self_attention", """
        def causal_self_attention(q, k, v):
            T, S = q.size(2), k.size(2)
            scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5
            allowed = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T + 1)  # one too many
            w = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
            return w @ v, w
        """, "a masked position leaked"),
    ("stage2_rnn_lstm", "lstm_cell", """
        def lstm_cell(x_proj, state, w_hh, b_hh):
            h, c = state
            f, i, g, o = (x_proj + h @ w_hh.t() + b_hh).chunk(4, dim=-1)  # forget and input swapped
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        """, "against nn.LSTMCell: values differ"),
    ("stage2_rnn_lstm", "lstm_cell", """
        def lstm_cell(x_proj, state, w_hh, b_hh):
            h, c = state
            i, f, g, o = (x_proj + h @ w_hh.t() + b_hh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.tanh(o) * torch.tanh(c), c  # the output gate squashed with tanh, not sigmoid
        """, "c' is right, so i, f and g are: look at the output gate"),
    ("stage2_rnn_lstm", "gru_cell", """
        def gru_cell(x_proj, h, w_hh, b_hh):
            xr, xz, xn = x_proj.chunk(3, dim=-1)
            hr, hz, hn = (h @ w_hh.t() + b_hh).chunk(3, dim=-1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            return z * n + (1 - z) * h  # the update gate the wrong way round
        """, "against nn.GRUCell: values differ"),
    ("stage2_rnn_lstm", "tbptt_step", """
        def tbptt_step(model, x, y, hidden):
            logits, hidden = model(x, hidden)
            return torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()), hidden  # not detached
        """, "still carries the graph"),
    ("stage5_gpt", "kv_cache_update", """
        def kv_cache_update(past, k, v):
            if past is None:
                return k, v
            return torch.cat([past[0], k], dim=1), torch.cat([past[1], v], dim=1)  # the heads' axis
        """, "keys after 4 more tokens: expected shape (2, 3, 8, 5)"),
    ("stage5_gpt", "causal_self_attention", """
        import math
        def causal_self_attention(q, k, v):
            T, S = q.size(-2), k.size(-2)
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
            hidden = torch.ones(T, S, dtype=torch.bool).triu(diagonal=S - T)  # hides the diagonal too
            weights = torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1)
            return weights @ v, weights
        """, "sees no key at all"),
    ("stage5_gpt", "top_k_filter", """
        def top_k_filter(logits, k):
            kth = torch.topk(logits, min(k + 1, logits.size(-1)), dim=-1).values[..., -1:]
            return logits.masked_fill(logits < kth, float("-inf"))  # keeps k + 1 tokens
        """, "expected -inf, got"),
    ("stage5_gpt", "top_k_filter", """
        def top_k_filter(logits, k):
            return logits.clone()  # filters nothing
        """, "expected -inf, got"),
    ("stage5_gpt", "top_k_filter", """
        def top_k_filter(logits, k):
            kth = torch.topk(logits, k, dim=-1).values[..., -1:]
            return logits.double().masked_fill(logits.double() < kth.double(), float("-inf"))
        """, "expected dtype torch.float32, got torch.float64"),
    ("stage5_gpt", "top_p_filter", """
        def top_p_filter(logits, p):
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
            drop = torch.zeros_like(cumulative, dtype=torch.bool).scatter(-1, order, cumulative > p)
            return logits.masked_fill(drop, float("-inf"))  # drops the token that crosses p
        """, "the nucleus is tokens"),
    ("stage5_gpt", "init_gpt2", """
        def init_gpt2(model):
            for module in model.modules():  # the LayerNorms' gains too
                if getattr(module, "weight", None) is not None:
                    torch.nn.init.normal_(module.weight, 0.0, 0.02)
                if getattr(module, "bias", None) is not None:
                    torch.nn.init.zeros_(module.bias)
        """, "leave the LayerNorms at gain 1"),
    ("stage5_gpt", "init_gpt2", """
        def init_gpt2(model):
            for m in model.modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
                    torch.nn.init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, torch.nn.Linear) and m.bias is not None:
                    torch.nn.init.zeros_(m.bias)  # c_proj never scaled down
        """, "c_proj.weight: standard deviation"),
    ("stage6_finetune_cls", "lora_forward", """
        def lora_forward(x, layer):
            return layer.base(x) + x @ layer.lora_A.t() @ layer.lora_B.t()  # no alpha / r
        """, "values differ"),
    ("stage1_mlp", "masked_mean", """
        def masked_mean(embedded, ids):
            return embedded.mean(dim=1)  # the padding counted in
        """, "values differ"),
    ("stage3_attention_seq2seq", "greedy_step", """
        def greedy_step(model, prev, state, finished):
            log_probs, state = model.decode_step(prev, state)
            nxt = log_probs.argmax(-1)  # finished sentences keep producing words
            return nxt, state, finished | (nxt == 3)
        """, "a finished sentence gets <pad>"),
]


@pytest.mark.parametrize("stage, part, code, words", MISTAKES, ids=[f"{m[1]}-{i}" for i, m in enumerate(MISTAKES)])
def test_classic_mistakes_are_caught_and_named(stage, part, code, words, tmp_path):
    path = tmp_path / "yours.py"
    path.write_text("import torch\n" + textwrap.dedent(code), encoding="utf-8")
    [result] = run_checks(stage, *load_yours(stage, path), only=[part])
    assert result.status == "wrong" and words in result.detail, result


def test_the_command_line_reports_parts_and_exits_non_zero_until_all_pass(tmp_path, capsys):
    done = run_cli("shared.check", "stage4")
    assert done.returncode == 1 and "scaled_dot_product_attention  not implemented yet" in done.stdout
    assert "4 of 4 parts to go" in done.stdout
    mine = reference_file(tmp_path, "stage4_transformer")
    assert check_main(["4", "--file", str(mine)]) == 0
    said = capsys.readouterr().out
    assert "all 4 parts pass" in said and f"--yours --yours_file {mine}" in said  # the command carries the file
    assert check_main(["4", "--file", str(mine), "--part", "scaled_dot_product_attention"]) == 0
    said = capsys.readouterr().out
    assert "parts pass" not in said and "scaled_dot_product_attention passes; the other parts were not checked" in said
    with pytest.raises(UserError, match="unknown stage 'stage9'"):
        check_main(["stage9"])


def test_a_broken_or_incomplete_file_is_one_sentence_and_never_changed(tmp_path, capsys):
    broken = tmp_path / "yours.py"
    broken.write_text("import torch\n\ndef masked_mean(embedded, ids)\n    return embedded\n", encoding="utf-8")
    before = hashlib.sha256(broken.read_bytes()).hexdigest()
    done = run_cli("shared.check", "stage1", "--file", str(broken))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{broken} line 3: " in last_line(done) and "fix it and run the check again" in last_line(done)
    incomplete = tmp_path / "partial.py"
    incomplete.write_text("from stage1_mlp.model import masked_mean  # noqa\n", encoding="utf-8")
    assert check_main(["stage1", "--file", str(incomplete)]) == 1
    said = capsys.readouterr().out
    assert "bag_of_ngrams  missing: partial.py has no bag_of_ngrams" in said and "masked_mean    passed" in said
    assert hashlib.sha256(broken.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.py", "yours.py"]  # no bytecode beside them


# Each stage's train command with --yours (the reference copied in) against the same run without it,
# on the path --yours runs (written-out attention, Python cells, no fused embedding bag).
YOURS_RUNS = [
    ("stage1_mlp", ["--dataset", "trec", "--no-embedding_bag", "--max_steps", "8"]),
    ("stage2_rnn_lstm", ["--no-fast", "--max_steps", "8"]),
    ("stage3_attention_seq2seq", ["--max_steps", "8", "--max_train_pairs", "300", "--eval_interval", "8"]),
    ("stage4_transformer", ["--attention", "manual", "--max_steps", "8", "--max_train_pairs", "300",
                            "--eval_interval", "8"]),
    ("stage5_gpt", ["--attention", "manual", "--max_steps", "8"]),
    ("stage6_finetune_cls", ["--init_from", "random", "--random_shape", "2,2,32,32", "--max_steps", "8",
                             "--eval_interval", "8"]),
]


@pytest.mark.parametrize("stage, flags", YOURS_RUNS, ids=[s for s, _ in YOURS_RUNS])
def test_yours_with_the_reference_trains_exactly_like_the_reference(stage, flags, tmp_path):
    train = importlib.import_module(f"{stage}.train")
    common = ["--preset", "tiny", "--log_interval", "1", *flags]
    reference = train.main([*common, "--out_dir", str(tmp_path / "reference")])
    yours = train.main([*common, "--yours", "--yours_file", str(reference_file(tmp_path, stage)),
                        "--out_dir", str(tmp_path / "yours")])
    assert yours["yours"] == sorted(p.name for p in stage_parts(stage)) and reference["yours"] == []
    losses = [[r["train_loss"] for r in read_history(tmp_path / run / "history.csv")] for run in ("reference", "yours")]
    assert len(losses[0]) == 8 and losses[1] == pytest.approx(losses[0], abs=1e-5)


def test_yours_with_nothing_written_is_one_sentence(tmp_path):
    done = run_cli("stage4_transformer.train", "--preset", "tiny", "--yours", "--out_dir", str(tmp_path / "run"))
    assert done.returncode == 1 and "none of the parts in" in last_line(done) and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- every part is used where it says


class PartRan(Exception):
    """Raised by a stand-in part: the model called it."""


def raising(name: str):
    def part(*args, **kwargs):
        raise PartRan(name)

    return part


def _stage1_paths(parts) -> None:
    """Featurize a text, then the written-out average (the path --yours trains on)."""
    from stage1_mlp.data import NgramFeaturizer
    from stage1_mlp.model import BagOfNgramsMLP

    featurizer = NgramFeaturizer.fit(["what is it", "who is"], ngrams=2, hash_buckets=8, min_freq=1,
                                     bag_of_ngrams=parts.bag_of_ngrams)
    ids = torch.tensor([featurizer.encode("what is it")])  # (1, T)
    BagOfNgramsMLP(featurizer.num_embeddings, 2, embed_dim=4, hidden_dim=4, embedding_bag=False, parts=parts)(ids)


def _stage2_paths(parts) -> None:
    """Each cell in the written-out layers, of the language model and of the classifier (tbptt_step is
    called by train.py: test_train_yours_runs_the_learners_tbptt_step)."""
    from stage2_rnn_lstm.model import RecurrentClassifier, RecurrentLM, RNNConfig

    idx = torch.randint(1, 11, (2, 5))
    for kind in ("rnn", "gru", "lstm"):
        cfg = RNNConfig(vocab_size=11, model_type=kind, embed_dim=4, hidden_size=4, num_layers=1, dropout=0.0,
                        fast=False)
        RecurrentLM(cfg, parts)(idx)
        RecurrentClassifier(cfg, 2, parts=parts)(idx)


def _stage3_paths(parts) -> None:
    """Teacher-forced training with each score, then greedy decoding as the scoring of a split runs it."""
    from shared.translation_run import translate_ids
    from stage3_attention_seq2seq.model import Seq2Seq, Seq2SeqConfig

    src, src_len, tgt = torch.randint(4, 12, (2, 5)), torch.tensor([5, 3]), torch.randint(4, 9, (2, 4))
    src[1, 3:] = 0  # <pad>
    for kind in ("bahdanau", "luong"):
        model = Seq2Seq(Seq2SeqConfig(12, 9, 4, 4, 4, 4, 0.0, kind), parts)
        model(src, src_len, tgt)
        translate_ids(model, [[5, 6, 7]], beam_size=1, max_len=4, alpha=0.0)


def _stage5_paths(parts) -> None:
    """Build (the init), then sample with the written-out attention, the KV cache and both filters."""
    from stage5_gpt.model import GPT, GPTConfig

    gpt = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=8, attention="manual"), parts)
    list(gpt.eval().generate(torch.tensor([[1, 2, 3]]), 2, top_k=5, top_p=0.9))


def _stage6_paths(parts) -> None:
    """Freeze for LoRA, classify two texts, fold the adapters in."""
    from stage5_gpt.model import GPT, GPTConfig
    from stage6_finetune_cls.model import GPTClassifier, merge_lora, set_trainable

    model = GPTClassifier(GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=8)), 2, parts)
    set_trainable(model, "lora", lora_rank=2, lora_alpha=4.0)
    model(torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2]))
    merge_lora(model)


PART_PATHS = {"stage1_mlp": _stage1_paths, "stage2_rnn_lstm": _stage2_paths,
              "stage3_attention_seq2seq": _stage3_paths, "stage5_gpt": _stage5_paths,
              "stage6_finetune_cls": _stage6_paths}  # stage 4's: tests/test_stage4.py
USED_PARTS = [(stage, part.name) for stage in PART_PATHS for part in stage_parts(stage) if part.name != "tbptt_step"]


@pytest.mark.parametrize("stage", list(STAGES.values()))
def test_each_stage_parts_are_the_parts_of_its_yours_file(stage):
    from dataclasses import fields

    parts = importlib.import_module(f"{stage}.model").Parts
    assert sorted(f.name for f in fields(parts)) == sorted(p.name for p in stage_parts(stage))


@pytest.mark.parametrize("stage, part", USED_PARTS, ids=[f"{s.split('_')[0]}-{p}" for s, p in USED_PARTS])
def test_a_model_built_with_a_part_runs_that_part(stage, part):
    parts = importlib.import_module(f"{stage}.model").Parts
    PART_PATHS[stage](parts())  # the reference runs the whole path
    with pytest.raises(PartRan, match=part):
        PART_PATHS[stage](parts(**{part: raising(part)}))


def test_train_yours_runs_the_learners_tbptt_step(tmp_path):
    """`python -m stage2_rnn_lstm.train --yours` once patched a copy of train.py that never trained."""
    from stage2_rnn_lstm.config import PRESETS

    mine = tmp_path / "yours.py"
    mine.write_text("def tbptt_step(model, x, y, hidden):\n"
                    "    raise RuntimeError(f'the learner tbptt_step ran on a window {tuple(x.shape)}')\n",
                    encoding="utf-8")
    done = run_cli("stage2_rnn_lstm.train", "--preset", "tiny", "--max_steps", "2", "--yours", "--yours_file",
                   str(mine), "--out_dir", str(tmp_path / "run"), timeout=120)
    window = (PRESETS["tiny"]["batch_size"], PRESETS["tiny"]["seq_len"])  # a training batch, not the check's
    assert done.returncode == 1 and "--yours: training with your tbptt_step" in done.stdout
    assert last_line(done) == f"RuntimeError: the learner tbptt_step ran on a window {window}", done.stderr[-2000:]


FORCING_FILTERS = """
import torch


def _only(logits, token):
    forced = torch.full_like(logits, float("-inf"))
    forced[:, token] = 0.0
    return forced


def top_k_filter(logits, k):
    return _only(logits, 5)


def top_p_filter(logits, p):
    return _only(logits, 9)
"""


def test_generate_yours_samples_with_the_learners_filters(tmp_path, capsys):
    from stage5_gpt import generate
    from stage5_gpt import train as stage5_train

    run = tmp_path / "run"
    stage5_train.main(["--preset", "tiny", "--max_steps", "1", "--out_dir", str(run)])
    tokenizer = stage5_train.load_model(run)[1]
    mine = tmp_path / "filters.py"
    mine.write_text(FORCING_FILTERS, encoding="utf-8")
    common = ["--checkpoint", str(run), "--max_new_tokens", "12", "--no-stream", "--temperature", "1.0"]
    capsys.readouterr()
    [top_k] = generate.main([*common, "--top_k", "3", "--top_p", "1.0", "--yours", "--yours_file", str(mine)])
    assert "--yours: sampling with your top_k_filter, top_p_filter" in capsys.readouterr().out
    [top_p] = generate.main([*common, "--top_k", "0", "--top_p", "0.5", "--yours", "--yours_file", str(mine)])
    [reference] = generate.main([*common, "--top_k", "3", "--top_p", "0.5"])
    assert top_k == tokenizer.decode([5] * 12) and top_p == tokenizer.decode([9] * 12)
    assert reference not in (top_k, top_p)


def test_a_part_that_calls_a_failing_part_points_at_that_part(tmp_path):
    from shared.check import Result, report

    parts = stage_parts("stage4_transformer")
    results = [Result("scaled_dot_product_attention", "wrong", "values differ"),
               Result("multi_head_attention", "wrong", "values differ")]
    text = report("stage4_transformer", tmp_path / "yours.py", results, parts)
    assert "hint: it calls your scaled_dot_product_attention, which fails its own check above" in text
    assert "transpose to (B, h, L, dh)" not in text  # not the reshaping hint: the fault is upstream
    alone = report("stage4_transformer", tmp_path / "yours.py", results[1:], parts)
    assert "transpose to (B, h, L, dh)" in alone
