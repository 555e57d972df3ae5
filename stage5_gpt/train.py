"""Pretrain a GPT: `python -m stage5_gpt.train` (Tiny Shakespeare, characters, preset by device).

    python -m stage5_gpt.train --preset cpu                       # ~2 min on 2 CPU cores
    python -m stage5_gpt.train --preset gpu                       # one GPU, bf16
    python -m stage5_gpt.train --dataset wikitext2 --preset cpu   # GPT-2 BPE tokens
    torchrun --nproc_per_node 4 -m stage5_gpt.train --preset gpt2 # DDP: same flags, one process per GPU
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from shared import distributed
from shared.check import with_yours
from shared.checkpoint import load_checkpoint
from shared.cli import UserError, parse_config, run_main
from shared.devices import resolve_amp
from shared.metrics import next_token_accuracy
from shared.records import command_for, write_metrics
from shared.train import make_adamw, seed_everything, train
from stage5_gpt.config import PRESETS, GPTTrainConfig
from stage5_gpt.data import Corpus, RandomWindows, Tokenizer, load_corpus, score_tokens
from stage5_gpt.hf import is_hf_folder, load_hf_gpt2
from stage5_gpt.model import GPT, GPTConfig

STAGE = "stage5_gpt"


def load_model(source: str | Path, device: torch.device | str = "cpu",
               **overrides) -> tuple[GPT, Tokenizer, dict | None]:
    """A GPT from a stage 5 run folder / checkpoint file or a Hugging Face GPT-2 folder, its tokenizer,
    and the training config it was saved with (None for a Hugging Face folder).

    `overrides` change run-time options of the model config (dropout, attention).
    """
    if is_hf_folder(source):
        model = load_hf_gpt2(source, **overrides)
        return model.to(device), Tokenizer("gpt2"), None
    state = load_checkpoint(source, required=("model", "model_config", "tokenizer", "config"))
    try:
        model = GPT(GPTConfig(**{**state["model_config"], **overrides}))
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError):
        raise UserError(f"checkpoint {source} does not hold a stage 5 GPT of this version; train it again.") from None
    return model.to(device), Tokenizer.from_json(state["tokenizer"]), state["config"]


def build_model(cfg: GPTTrainConfig, corpus: Corpus) -> GPT:
    """A fresh GPT of the config's shape, or one initialised from --init_from."""
    if cfg.init_from == "scratch":
        vocab = corpus.tokenizer.size
        if corpus.tokenizer.kind == "gpt2":
            vocab = 50304  # 50257 rounded up to a multiple of 64: faster matmuls; the extra rows are never targets
        return GPT(cfg.model_config(vocab))
    model, tokenizer, _ = load_model(cfg.init_from, dropout=cfg.dropout, attention=cfg.attention)
    if tokenizer.to_json() != corpus.tokenizer.to_json():
        raise UserError(f"--init_from {cfg.init_from} was trained with the {tokenizer.kind} tokenizer of another text; "
                        f"use a model with the same tokenizer as --dataset {cfg.dataset} --tokenizer {cfg.tokenizer}.")
    if cfg.block_size > model.cfg.block_size:
        raise UserError(f"--block_size {cfg.block_size} is longer than the loaded model's context "
                        f"({model.cfg.block_size}); pass --block_size {model.cfg.block_size} or less.")
    print(f"initialised from {cfg.init_from}: {model.cfg.n_layer} layers, {model.cfg.n_embd} dims "
          f"(the loaded model's shape wins over the preset's)")
    return model


def lm_metrics(prefix: str, nats: float, tokens: int, chars: int, words: int, tokenizer: str,
               n_bytes: int = 0, hits: Sequence[int] = ()) -> dict[str, float]:
    """Loss and perplexity per token, plus the fair units for comparing tokenizers: nats per character
    (and bits per character), bits per UTF-8 byte, and perplexity per word for WikiText; and the
    next-token accuracy (top-1, top-5) when the hits are given."""
    out = {f"{prefix}_loss": nats / tokens, f"{prefix}_perplexity": perplexity(nats / tokens),
           **(next_token_accuracy(prefix, hits, tokens) if hits else {})}
    if n_bytes:
        out[f"{prefix}_bits_per_byte"] = nats / n_bytes / math.log(2)
    if chars:
        out[f"{prefix}_loss_per_char"] = nats / tokens * (tokens / chars if tokenizer != "char" else 1.0)
        out[f"{prefix}_bpc"] = out[f"{prefix}_loss_per_char"] / math.log(2)
    if tokenizer != "char" and words:
        out[f"{prefix}_word_perplexity"] = perplexity(nats / words)
    return out


def perplexity(nats_per_unit: float) -> float:
    """exp(loss); infinite rather than an overflow for a loss no model should have (a diverged one)."""
    return math.exp(nats_per_unit) if nats_per_unit < 700 else math.inf


def score_split(model: GPT, corpus: Corpus, split: str, cfg: GPTTrainConfig, device: torch.device,
                max_tokens: int = 0, rank: int = 0, world: int = 1) -> dict[str, float]:
    tokens = corpus.splits[split]
    nats, count, hits = score_tokens(model, tokens, min(cfg.block_size, model.cfg.block_size),
                                     max(8, cfg.batch_size), device, max_tokens, rank, world)
    # For a partial pass, the characters and words scale with the share of tokens scored. Words are
    # WikiText's unit (space-separated by construction); in Chinese or code they mean little.
    share = count / max(1, len(tokens) - 1)
    words = round(corpus.words[split] * share) if cfg.dataset == "wikitext2" else 0
    return lm_metrics(split, nats, count, round(corpus.chars[split] * share), words, corpus.tokenizer.kind,
                      round(corpus.bytes.get(split, 0) * share), hits)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config(GPTTrainConfig, PRESETS, argv, prog=f"python -m {STAGE}.train",
                       description="Pretrain a GPT on a text corpus.")
    device = distributed.setup(cfg.device)
    rank, world = distributed.rank_world()
    try:
        return _train(cfg, device, rank, world, argv)
    finally:
        distributed.teardown()


def _train(cfg: GPTTrainConfig, device: torch.device, rank: int, world: int, argv) -> dict:
    run_dir = cfg.checked_run_dir(STAGE)  # a run already there is refused now, not after the data is ready
    cfg, yours = with_yours(cfg, STAGE)  # --yours: your parts from yours.py swapped in
    seed_everything(cfg.seed)
    torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls for the fp32 parts on Ampere+ GPUs
    torch.backends.cudnn.allow_tf32 = True
    corpus = load_corpus(cfg.dataset, cfg.tokenizer_name, cfg.text_file, cfg.vocab_size)
    corpus.check_context(cfg.block_size)
    model = build_model(cfg, corpus).to(device)
    seed_everything(cfg.seed + rank)  # same initial weights everywhere, different dropout per process
    n_train = len(corpus.splits["train"])
    if rank == 0:
        print(f"{STAGE}: {cfg.dataset} ({corpus.tokenizer.kind} tokens: {n_train:,} train / "
              f"{len(corpus.splits['val']):,} val), {model.num_params():,} parameters, device {device}"
              f"{f' x{world}' if world > 1 else ''}, amp {resolve_amp(cfg.amp, device)}, run {run_dir}")

    batches = RandomWindows(corpus.splits["train"], cfg.batch_size, cfg.block_size, cfg.seed, device, rank, world)

    def loss_fn(m, batch):
        inputs, targets = batch
        _, loss = m(inputs, targets)
        return loss, inputs.numel()

    def evaluate(m) -> dict[str, float]:
        return score_split(m, corpus, "val", cfg, device, cfg.eval_tokens, rank, world)

    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * world
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device, betas=(0.9, cfg.beta2))
    extra = {"model_config": asdict(model.cfg), "tokenizer": corpus.tokenizer.to_json(), "stage": STAGE}
    result = train(model, cfg, batch_at=batches, loss_fn=loss_fn, evaluate=evaluate, run_dir=run_dir,
                   steps_per_epoch=max(1, n_train // tokens_per_step), extra_state=extra, optimizer=optimizer,
                   item_name="tokens")

    # Final numbers: the best checkpoint on the whole val (and test) split, or --final_eval_tokens of each.
    if rank == 0:
        model.load_state_dict(load_checkpoint(result.best_path)["model"])
    distributed.broadcast_weights(model)  # rank 0 read best.pt; every process scores its shard with it
    model.eval()
    amp_dtype = resolve_amp(cfg.amp, device)
    scores: dict[str, float] = {}
    with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        for split in [s for s in ("val", "test") if s in corpus.splits]:
            scores.update(score_split(model, corpus, split, cfg, device, cfg.final_eval_tokens, rank, world))
    if rank != 0:
        return scores
    model_name = f"GPT {cfg.n_layer}L/{cfg.n_head}H/{cfg.n_embd}d ctx {cfg.block_size}"
    record = write_metrics(run_dir, {
        "stage": STAGE, "yours": yours, "task": "language_model", "model": model_name, "dataset": cfg.dataset,
        "tokenizer": corpus.tokenizer.kind, "preset": cfg.preset, "seed": cfg.seed, "params": model.num_params(),
        "device": str(device), "world_size": world, "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
        "compile": cfg.compile, "steps": result.steps, "train_seconds": round(result.train_seconds, 2),
        "tokens_per_sec": round(result.items_per_sec), "interrupted": result.interrupted, **scores,
        "command": command_for(f"{STAGE}.train", argv),
    })
    shown = "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if k.endswith(("loss", "perplexity", "bpc")))
    print(f"{cfg.dataset}: {shown}  ({result.train_seconds:.1f} s of training, "
          f"{result.items_per_sec:,.0f} tokens/s)  -> {run_dir}")
    prompt = torch.tensor([corpus.tokenizer.encode("\n" if corpus.tokenizer.kind == "char" else "The")], device=device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    sample = torch.cat(list(model.generate(prompt, 200, temperature=0.8, top_k=40, generator=generator)), dim=1)
    print("sample:\n" + corpus.tokenizer.decode(sample[0].tolist()))
    return record


if __name__ == "__main__":
    run_main(main)
