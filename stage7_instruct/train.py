"""Instruction-tune a GPT (supervised finetuning, SFT): `python -m stage7_instruct.train` (see --help).

    python -m stage7_instruct.train                         # the storybook GPT on both sets, prompt masked
    python -m stage7_instruct.train --no-mask_prompt        # the loss on the prompt too
    python -m stage7_instruct.train --data ch07             # LLMs-from-scratch's 935 training entries only
    python -m stage7_instruct.train --init_from path/to/hf-gpt2   # a Hugging Face GPT-2 folder you have

Writes runs/stage7_instruct/sft-<data>-<preset>/ (config, history, curves, checkpoints, metrics.json).
Then: python -m stage7_instruct.evaluate, python -m stage7_instruct.chat, python -m stage7_instruct.dpo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from shared.checkpoint import load_checkpoint
from shared.cli import UserError, run_main
from shared.run import Run
from shared.train import make_adamw, train
from stage5_gpt.hf import is_hf_folder
from stage5_gpt.model import GPT, GPTConfig
from stage5_gpt.train import load_model as load_stage5
from stage7_instruct.config import DEFAULT_PRETRAINED, PRETRAIN_COMMAND, SFT_PRESETS, STAGE, SFTConfig
from stage7_instruct.data import Encoded, ShuffledExamples, encode_instructions, load_instructions, pad_batch
from stage7_instruct.model import ChatTokenizer, Parts, add_special_rows


def load_chat_model(source: str | Path, device: torch.device | str = "cpu", dropout: float = 0.0,
                    stage7_only: bool = False) -> tuple[GPT, ChatTokenizer, str]:
    """A GPT that reads the chat template, its tokenizer and what it is: "stage7" (finetuned here), or
    "stage5" / "gpt2" (a base model, given the special tokens' rows now, each at the mean of the rest)."""
    source = str(source)
    if source == DEFAULT_PRETRAINED and not Path(source, "best.pt").exists():
        raise UserError(f"no pretrained stage 5 model at {source}; train it first with `make pretrain` "
                        f"({PRETRAIN_COMMAND}, ~30 min on CPU), or pass --init_from a stage 5 or 7 run folder "
                        f"or a Hugging Face GPT-2 folder.")
    if not (is_hf_folder(source) or Path(source).exists()):
        raise UserError(f"{source} does not exist; pass a stage 7 run folder (or a stage 5 one, or a Hugging Face "
                        f"GPT-2 folder).")
    if not is_hf_folder(source):
        state = load_checkpoint(source, required=("model", "model_config", "tokenizer"))
        if state.get("stage") == STAGE:
            gpt = GPT(GPTConfig(**{**state["model_config"], "dropout": dropout}))
            gpt.load_state_dict(state["model"])
            return gpt.to(device), ChatTokenizer.from_json(state["tokenizer"]), "stage7"
        if state.get("stage") not in (None, "stage5_gpt"):
            raise UserError(f"{source} holds a {state.get('stage')} model, not a stage 5 GPT or a stage 7 "
                            f"assistant; pass a stage 5 or stage 7 run folder.")
    if stage7_only:
        raise UserError(f"{source} is a base model, not one finetuned by stage 7; train one first "
                        f"(python -m stage7_instruct.train) and pass its run folder.")
    gpt, base_tokenizer, _ = load_stage5(source, dropout=dropout)
    if base_tokenizer.kind == "char":
        raise UserError(f"{source} is a character-level stage 5 model: it has no tokens to give the chat "
                        f"template's special tokens, and reads one character at a time; pretrain a BPE model "
                        f"({PRETRAIN_COMMAND}) and start from it.")
    tokenizer = ChatTokenizer(base_tokenizer)
    add_special_rows(gpt, tokenizer)
    return gpt.to(device), tokenizer, "gpt2" if is_hf_folder(source) else "stage5"


def response_loss(model: GPT, data: Encoded, parts: Parts, pad_id: int, device: torch.device,
                  limit: int = 0, batch_size: int = 32) -> float:
    """Validation loss on the supervised tokens: the sum over every example, divided by their count."""
    n = len(data) if not limit else min(limit, len(data))
    total = count = 0.0
    for start in range(0, n, batch_size):
        rows = range(start, min(n, start + batch_size))
        ids, mask = pad_batch([data.ids[i] for i in rows], [data.masks[i] for i in rows], pad_id, device)
        supervised = float(mask[:, 1:].sum())
        logits, _ = model(ids)
        total += float(parts.masked_lm_loss(logits, ids, mask)) * supervised
        count += supervised
    return total / max(count, 1.0)


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, SFTConfig, SFT_PRESETS, argv, "Instruction-tune a GPT (supervised finetuning).")
    cfg, device = run.cfg, run.device
    parts = Parts(**run.yours)  # your parts on top of the reference's
    source = DEFAULT_PRETRAINED if cfg.init_from == "pretrained" else cfg.init_from
    model, tokenizer, kind = load_chat_model(source, device, cfg.dropout)
    context = model.cfg.block_size
    sets = load_instructions(cfg.data)
    # The loss always reads the validation sets with the prompt masked: the two --mask_prompt runs are then
    # scored on the same tokens (the response and <|end|>).
    data = {"train": encode_instructions(sets["train"], tokenizer, context, cfg.mask_prompt, parts.render_chat)}
    for source_name in ("storybook", "ch07"):
        items = [x for x in sets["val"] if x.source == source_name]
        if items:
            data[f"val_{source_name}"] = encode_instructions(items, tokenizer, context, True, parts.render_chat)
    dropped = {name: d.dropped for name, d in data.items()}
    print(f"{STAGE}: SFT of {source} ({kind}, {model.cfg.n_layer} layers x {model.cfg.n_embd} dims, context "
          f"{context}) on {cfg.data}: {len(data['train']):,} train conversations ("
          + ", ".join(f"{name} {len(d):,}" for name, d in data.items() if name != "train")
          + f"); dropped for not fitting the context: {dropped}; "
          f"prompt {'masked' if cfg.mask_prompt else 'in the loss'}"
          f"; device {device}, {run.amp_note}; run {run.dir}")

    pad = tokenizer.end
    batches = ShuffledExamples(data["train"], cfg.batch_size, cfg.seed, pad, device)

    def loss_fn(m, batch):
        ids, mask = batch  # (B, T), (B, T)
        logits, _ = m(ids)  # (B, T, V)
        return parts.masked_lm_loss(logits, ids, mask), int(mask.sum())

    def evaluate(m) -> dict[str, float]:
        scores = {f"{name}_loss": response_loss(m, d, parts, pad, device, cfg.eval_examples)
                  for name, d in data.items() if name != "train"}
        scores["val_loss"] = sum(scores.values()) / len(scores)
        return scores

    extra = {"model_config": asdict(model.cfg), "tokenizer": tokenizer.to_json(), "stage": STAGE,
             "start": source, "start_kind": kind}
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device, betas=(0.9, 0.99))
    result = train(model, optimizer, run, batch_at=batches, loss_fn=loss_fn, evaluate=evaluate,
                   steps_per_epoch=batches.steps_per_epoch, extra_state=extra, item_name="tokens")

    model.load_state_dict(load_checkpoint(result.best_path)["model"])
    model.eval()
    with torch.no_grad(), run.autocast():
        scores = {f"{name}_loss": response_loss(model, d, parts, pad, device)
                  for name, d in data.items() if name != "train"}
    record = run.record(result, task="instruct", params=model.num_params(), method="sft",
                        model_name=f"SFT on {cfg.data}, prompt {'masked' if cfg.mask_prompt else 'unmasked'}",
                        init_from=source, mask_prompt=cfg.mask_prompt, train_examples=len(data["train"]),
                        dropped=dropped, **scores)
    print("SFT done: " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items())
          + f"  ({result.train_seconds:.1f} s of training)  -> {run.dir}")
    return record


if __name__ == "__main__":
    run_main(main)
