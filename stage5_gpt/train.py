"""Pretrain a GPT: `python -m stage5_gpt.train` (Tiny Shakespeare, characters, preset by device).

    python -m stage5_gpt.train --preset cpu                       # ~2 min on 2 CPU cores
    python -m stage5_gpt.train --preset gpu                       # one GPU, bf16
    python -m stage5_gpt.train --dataset wikitext2 --preset cpu   # GPT-2 BPE tokens
    torchrun --nproc_per_node 4 -m stage5_gpt.train --preset gpt2 # DDP: same flags, one process per GPU
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from shared import distributed
from shared.checkpoint import load_checkpoint
from shared.cli import UserError, run_main
from shared.flops import peak_gflops
from shared.metrics import lm_metrics
from shared.run import Run, seed_everything
from shared.train import make_adamw, train
from stage5_gpt.config import PRESETS, GPTTrainConfig
from stage5_gpt.data import Corpus, RandomWindows, Tokenizer, load_corpus, score_tokens
from stage5_gpt.hf import is_hf_folder, load_hf_gpt2
from stage5_gpt.model import GPT, GPTConfig, Parts

STAGE = "stage5_gpt"


def load_model(source: str | Path, device: torch.device | str = "cpu", parts: Parts | None = None,
               **overrides) -> tuple[GPT, Tokenizer, dict | None]:
    """A GPT from a stage 5 run folder / checkpoint file or a Hugging Face GPT-2 folder, its tokenizer,
    and the training config it was saved with (None for a Hugging Face folder).

    `parts`: the functions it runs (None: the reference); `overrides` change run-time options of the
    model config (dropout, attention).
    """
    if is_hf_folder(source):
        model = load_hf_gpt2(source, parts=parts, **overrides)
        return model.to(device), Tokenizer("gpt2"), None
    state = load_checkpoint(source, required=("model", "model_config", "tokenizer", "config"))
    try:
        model = GPT(GPTConfig(**{**state["model_config"], **overrides}), parts)
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError):
        raise UserError(f"checkpoint {source} does not hold a stage 5 GPT of this version; train it again.") from None
    return model.to(device), Tokenizer.from_json(state["tokenizer"]), state["config"]


def build_model(cfg: GPTTrainConfig, corpus: Corpus, parts: Parts | None = None) -> GPT:
    """A fresh GPT of the config's shape, or one initialised from --init_from, built with `parts`."""
    if cfg.init_from == "scratch":
        vocab = corpus.tokenizer.size
        if corpus.tokenizer.kind == "gpt2":
            vocab = 50304  # 50257 rounded up to a multiple of 64: faster matmuls; the extra rows are never targets
        return GPT(cfg.model_config(vocab), parts)
    model, tokenizer, _ = load_model(cfg.init_from, parts=parts, dropout=cfg.dropout, attention=cfg.attention)
    if tokenizer.to_json() != corpus.tokenizer.to_json():
        raise UserError(f"--init_from {cfg.init_from} was trained with the {tokenizer.kind} tokenizer of another text; "
                        f"use a model with the same tokenizer as --dataset {cfg.dataset} --tokenizer {cfg.tokenizer}.")
    if cfg.block_size > model.cfg.block_size:
        raise UserError(f"--block_size {cfg.block_size} is longer than the loaded model's context "
                        f"({model.cfg.block_size}); pass --block_size {model.cfg.block_size} or less.")
    print(f"initialised from {cfg.init_from}: {model.cfg.n_layer} layers, {model.cfg.n_embd} dims "
          f"(the loaded model's shape wins over the preset's)")
    return model


def score_split(model: GPT, corpus: Corpus, split: str, cfg: GPTTrainConfig, device: torch.device,
                max_tokens: int = 0, rank: int = 0, world: int = 1) -> dict[str, float]:
    tokens = corpus.splits[split]
    nats, count, hits = score_tokens(model, tokens, min(cfg.block_size, model.cfg.block_size),
                                     max(8, cfg.batch_size), device, max_tokens, rank, world)
    # For a partial pass, the characters and words scale with the share of tokens scored. Words are
    # WikiText's unit (space-separated by construction); in Chinese or code they mean little.
    share = count / max(1, len(tokens) - 1)
    words = round(corpus.words[split] * share) if cfg.dataset == "wikitext2" else 0
    chars = count if corpus.tokenizer.kind == "char" else round(corpus.chars[split] * share)
    return lm_metrics(split, nats, count, chars=chars, words=words if corpus.tokenizer.kind != "char" else 0,
                      n_bytes=round(corpus.bytes.get(split, 0) * share), hits=hits)


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, GPTTrainConfig, PRESETS, argv, "Pretrain a GPT on a text corpus.")
    try:
        return _train(run)
    finally:
        run.close()  # under torchrun: leave the process group together


def _train(run: Run) -> dict:
    cfg, device, rank, world = run.cfg, run.device, run.rank, run.world
    torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls for the fp32 parts on Ampere+ GPUs
    torch.backends.cudnn.allow_tf32 = True
    corpus = load_corpus(cfg.dataset, cfg.tokenizer_name, cfg.text_file, cfg.vocab_size)
    corpus.check_context(cfg.block_size)
    model = build_model(cfg, corpus, Parts(**run.yours)).to(device)  # your parts on top of the reference's
    seed_everything(cfg.seed + rank)  # same initial weights everywhere, different dropout per process
    n_train = len(corpus.splits["train"])
    if rank == 0:
        print(f"{STAGE}: {cfg.dataset} ({corpus.tokenizer.kind} tokens: {n_train:,} train / "
              f"{len(corpus.splits['val']):,} val), {model.num_params():,} parameters, device {device}"
              f"{f' x{world}' if world > 1 else ''}, {run.amp_note}, attention {model.cfg.attention}"
              f"{', compiled' if cfg.compile else ''}, run {run.dir}")
    # MFU's two halves: what a token costs, and the best matmul rate at this model's shapes, measured now.
    flops_per_token = model.flops_per_token(cfg.block_size)
    peak, peak_shape = peak_gflops(model.matmul_shapes(cfg.batch_size * cfg.block_size),
                                   run.amp_dtype or torch.float32, device)
    if rank == 0:
        print(f"MFU against {peak:,.0f} GFLOP/s ({str(run.amp_dtype or torch.float32).replace('torch.', '')} "
              f"matmul {peak_shape[0]}x{peak_shape[1]} @ {peak_shape[1]}x{peak_shape[2]}, measured now), "
              f"{flops_per_token / 1e6:.1f} MFLOP per token (6N + 12LCT)")

    batches = RandomWindows(corpus.splits["train"], cfg.batch_size, cfg.block_size, cfg.seed, device, rank, world)

    def loss_fn(m, batch):
        inputs, targets = batch  # (B, T), (B, T)
        _, loss = m(inputs, targets)
        return loss, inputs.numel()

    def evaluate(m) -> dict[str, float]:
        return score_split(m, corpus, "val", cfg, device, cfg.eval_tokens, rank, world)

    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * world
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device, betas=(0.9, cfg.beta2))
    extra = {"model_config": asdict(model.cfg), "tokenizer": corpus.tokenizer.to_json(), "stage": STAGE}
    result = train(model, optimizer, run, batch_at=batches, loss_fn=loss_fn, evaluate=evaluate,
                   steps_per_epoch=max(1, n_train // tokens_per_step), extra_state=extra, item_name="tokens",
                   flops_per_item=flops_per_token, peak_flops=peak * 1e9 * world)
    mfu = result.items_per_sec * flops_per_token / (peak * 1e9 * world)  # tokens/s counts every process

    # Final numbers: the best checkpoint on the whole val (and test) split, or --final_eval_tokens of each.
    if rank == 0:
        model.load_state_dict(load_checkpoint(result.best_path)["model"])
    distributed.broadcast_weights(model)  # rank 0 read best.pt; every process scores its shard with it
    model.eval()
    scores: dict[str, float] = {}
    with torch.no_grad(), run.autocast():
        for split in [s for s in ("val", "test") if s in corpus.splits]:
            scores.update(score_split(model, corpus, split, cfg, device, cfg.final_eval_tokens, rank, world))
    if rank != 0:
        return scores
    shape = model.cfg  # the model that was trained: with --init_from, the loaded one's shape
    record = run.record(result, task="language_model", params=model.num_params(),
                        model_name=f"GPT {shape.n_layer}L/{shape.n_head}H/{shape.n_embd}d ctx {cfg.block_size}",
                        tokenizer=corpus.tokenizer.kind, world_size=world, compile=cfg.compile,
                        attention=model.cfg.attention, mfu=round(mfu, 4), flops_per_token=flops_per_token,
                        peak_gflops=round(peak, 1), **scores)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if k.endswith(("loss", "perplexity", "bpc")))
    print(f"{cfg.dataset}: {shown}  ({result.train_seconds:.1f} s of training, "
          f"{result.items_per_sec:,.0f} tokens/s, MFU {100 * mfu:.1f}%)  -> {run.dir}")
    prompt = torch.tensor([corpus.tokenizer.encode("\n" if corpus.tokenizer.kind == "char" else "The")], device=device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    sample = torch.cat(list(model.generate(prompt, 200, temperature=0.8, top_k=40, generator=generator)), dim=1)
    print("sample:\n" + corpus.tokenizer.decode(sample[0].tolist()))
    return record


if __name__ == "__main__":
    run_main(main)
