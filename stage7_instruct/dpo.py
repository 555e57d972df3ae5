"""Preference tuning with DPO: `python -m stage7_instruct.dpo` (see --help).

    python -m stage7_instruct.dpo                           # the SFT model of `train`, both kinds of pairs
    python -m stage7_instruct.dpo --pairs ch07 --beta 0.5   # the book's pairs only, a stiffer leash
    python -m stage7_instruct.dpo --preference_file my_pairs.json

The SFT model is both the policy's starting point and the frozen reference. The reference's
log-probabilities of every pair are computed once, before training (it never changes), so each step
runs one forward and backward pass of the policy over the chosen and rejected replies.

Storybook pairs come from the SFT model itself: for each of --story_prompts training prompts it writes
--samples_per_prompt replies, and the one meeting the most requirements is preferred to the one meeting
the fewest (prompts whose replies all tie give no pair). The pairs are saved in the run folder.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import asdict

import torch

from shared.checkpoint import load_checkpoint
from shared.cli import UserError, run_main
from shared.run import Run, seed_everything
from shared.runs import write_text
from shared.train import make_adamw, train
from stage7_instruct.config import DPO_PRESETS, STAGE, DPOConfig
from stage7_instruct.data import Pair, load_ch07_pairs, load_instructions, pad_batch
from stage7_instruct.generation import Sampling, sample_replies
from stage7_instruct.model import ChatTokenizer, Parts
from stage7_instruct.storybook import requirement_results
from stage7_instruct.train import load_chat_model


def storybook_pairs(model, tokenizer: ChatTokenizer, cfg: DPOConfig, parts: Parts, device) -> list[Pair]:
    """Pairs sampled from the SFT model on storybook training prompts, preferred by requirements met."""
    prompts = load_instructions("storybook")["train"]
    order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    sampling = Sampling(cfg.max_new_tokens, cfg.temperature)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    pairs = []
    model.eval()
    for i in order[:cfg.story_prompts]:
        item = prompts[i]
        prompt_ids, _ = parts.render_chat([("user", item.prompt)], tokenizer)
        scored = []
        for ids, stopped in sample_replies(model, prompt_ids, tokenizer, sampling, cfg.samples_per_prompt, generator):
            text = tokenizer.decode(ids)
            scored.append((sum(requirement_results(item.story.requirements, text)) + stopped, text))
        scored.sort(key=lambda s: s[0])
        if scored[-1][0] > scored[0][0]:
            pairs.append(Pair(item.prompt, scored[-1][1], scored[0][1], "storybook"))
    return pairs


def encode_pairs(pairs: Sequence[Pair], tokenizer: ChatTokenizer, context: int, parts: Parts) -> list[tuple]:
    """(chosen ids, chosen mask, rejected ids, rejected mask) of each pair whose two conversations fit."""
    out = []
    for p in pairs:
        chosen = parts.render_chat([("user", p.prompt), ("assistant", p.chosen)], tokenizer)
        rejected = parts.render_chat([("user", p.prompt), ("assistant", p.rejected)], tokenizer)
        if max(len(chosen[0]), len(rejected[0])) <= context:
            out.append((*chosen, *rejected))
    return out


def pair_logprobs(model, rows: Sequence[tuple], parts: Parts, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(chosen | prompt) and log p(rejected | prompt) (B,) each: both halves in one padded batch."""
    ids, mask = pad_batch([r[0] for r in rows] + [r[2] for r in rows], [r[1] for r in rows] + [r[3] for r in rows],
                          pad_id, device)  # (2B, T)
    logits, _ = model(ids)  # (2B, T, V)
    logp = parts.sequence_logprob(logits, ids, mask)  # (2B,)
    return logp[:len(rows)], logp[len(rows):]


@torch.no_grad()
def reference_logprobs(model, rows: Sequence[tuple], parts: Parts, pad_id: int, device,
                       batch: int = 32) -> torch.Tensor:
    """(N, 2): the frozen reference's log-probabilities of each pair's chosen and rejected reply."""
    out = []
    for start in range(0, len(rows), batch):
        chosen, rejected = pair_logprobs(model, rows[start:start + batch], parts, pad_id, device)
        out.append(torch.stack([chosen, rejected], dim=1).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 2)


def preference_scores(model, rows: Sequence[tuple], ref: torch.Tensor, parts: Parts, beta: float, pad_id: int,
                      device, batch: int = 32) -> dict[str, float]:
    """Held-out pairs: DPO loss, mean reward margin, and the share whose chosen reply wins (accuracy)."""
    losses, margins, chosen_r, rejected_r = [], [], [], []
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        chosen, rejected = pair_logprobs(model, part, parts, pad_id, device)
        r = ref[start:start + len(part)].to(device)
        loss, rc, rr = parts.dpo_loss(chosen.float(), rejected.float(), r[:, 0], r[:, 1], beta)
        losses.append(float(loss) * len(part))
        margins += (rc - rr).tolist()
        chosen_r += rc.tolist()
        rejected_r += rr.tolist()
    n = max(1, len(margins))
    return {"loss": sum(losses) / n, "margin": sum(margins) / n, "chosen_reward": sum(chosen_r) / n,
            "rejected_reward": sum(rejected_r) / n, "accuracy": sum(m > 0 for m in margins) / n}


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, DPOConfig, DPO_PRESETS, argv, "Preference-tune an SFT model with DPO.",
                    module=f"{STAGE}.dpo")
    cfg, device = run.cfg, run.device
    parts = Parts(**run.yours)
    policy, tokenizer, _ = load_chat_model(cfg.init_from, device, cfg.dropout, stage7_only=True)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)  # frozen: the leash DPO keeps the policy on
    context, pad = policy.cfg.block_size, tokenizer.end

    book = load_ch07_pairs(cfg.preference_file) if cfg.pairs in ("ch07", "both") else {"train": [], "val": [],
                                                                                          "test": []}
    story: list[Pair] = []
    if cfg.pairs in ("storybook", "both"):
        if run.resumed:  # the pairs travel in the checkpoint: a resumed run trains on the same ones
            story = [Pair(**p) for p in run.resumed["storybook_pairs"]]
        else:
            seed_everything(cfg.seed)
            with torch.no_grad(), run.autocast():
                story = storybook_pairs(policy, tokenizer, cfg, parts, device)
    n_story_val = len(story) // 10
    splits = {"train": book["train"] + story[n_story_val:], "val_ch07": book["val"],
              "val_storybook": story[:n_story_val],
              "test_ch07": book["test"]}
    rows = {name: encode_pairs(p, tokenizer, context, parts) for name, p in splits.items()}
    rows = {name: r for name, r in rows.items() if r or name == "train"}
    if not rows["train"]:
        raise UserError("no preference pair to train on (none fits the context, or the SFT model's replies all "
                        "tied); try --pairs ch07 or more --story_prompts.")
    with run.autocast():
        refs = {name: reference_logprobs(reference, r, parts, pad, device) for name, r in rows.items()}
    print(f"{STAGE}: DPO of {cfg.init_from}, beta {cfg.beta}: " + ", ".join(f"{name} {len(r):,} pairs"
                                                                          for name, r in rows.items())
          + f" ({len(story)} sampled storybook pairs); device {device}, {run.amp_note}; run {run.dir}")

    train_rows, train_ref = rows["train"], refs["train"]
    steps_per_epoch = max(1, len(train_rows) // cfg.batch_size)

    def batch_at(i: int):
        epoch, within = divmod(i, steps_per_epoch)
        order = torch.randperm(len(train_rows), generator=torch.Generator().manual_seed(cfg.seed + epoch))
        picked = order[within * cfg.batch_size:(within + 1) * cfg.batch_size].tolist()
        return [train_rows[j] for j in picked], train_ref[picked].to(device)

    def loss_fn(m, batch):
        part, ref = batch
        chosen, rejected = pair_logprobs(m, part, parts, pad, device)
        loss, _, _ = parts.dpo_loss(chosen.float(), rejected.float(), ref[:, 0], ref[:, 1], cfg.beta)
        return loss, len(part)

    def evaluate(m) -> dict[str, float]:
        scores = {}
        for name in [n for n in rows if n.startswith("val_")]:
            limit = cfg.eval_examples or len(rows[name])
            for key, value in preference_scores(m, rows[name][:limit], refs[name][:limit], parts, cfg.beta, pad,
                                                device).items():
                scores[f"{name}_{key}"] = value
        scores["val_accuracy"] = sum(v for k, v in scores.items() if k.endswith("_accuracy")) / max(
            1, sum(k.endswith("_accuracy") for k in scores))
        return scores

    if not run.resumed:
        with torch.no_grad(), run.autocast():
            start = preference_scores(policy, train_rows[:64], train_ref[:64], parts, cfg.beta, pad, device)
        print(f"DPO loss before training: {start['loss']:.4f} (ln 2 = {math.log(2):.4f}: the policy is the reference)")
    extra = {"model_config": asdict(policy.cfg), "tokenizer": tokenizer.to_json(), "stage": STAGE,
             "start": cfg.init_from, "storybook_pairs": [asdict(p) for p in story]}
    optimizer = make_adamw(policy, cfg.lr, cfg.weight_decay, device, betas=(0.9, 0.99))
    result = train(policy, optimizer, run, batch_at=batch_at, loss_fn=loss_fn, evaluate=evaluate,
                   steps_per_epoch=steps_per_epoch, extra_state=extra, item_name="pairs",
                   select_by="val_accuracy", higher_is_better=True)

    policy.load_state_dict(load_checkpoint(result.best_path)["model"])
    write_text(run.dir / "storybook_pairs.json", json.dumps([asdict(p) for p in story], indent=1))  # to read
    policy.eval()
    final: dict[str, float] = {}
    with torch.no_grad(), run.autocast():
        for name in [n for n in rows if n != "train"]:
            for key, value in preference_scores(policy, rows[name], refs[name], parts, cfg.beta, pad, device).items():
                final[f"{name}_{'dpo_loss' if key == 'loss' else key}"] = round(value, 4)  # not a reply loss
    record = run.record(result, task="instruct", params=policy.num_params(), method="dpo",
                        model_name=f"DPO (beta {cfg.beta}) on {cfg.pairs} pairs", init_from=cfg.init_from,
                        beta=cfg.beta, train_pairs=len(train_rows), storybook_pairs=len(story), **final)
    print("DPO done: " + "  ".join(f"{k} {v:.4f}" for k, v in final.items() if k.endswith(("accuracy", "margin")))
          + f"  ({result.train_seconds:.1f} s of training)  -> {run.dir}")
    return record


if __name__ == "__main__":
    run_main(main)
