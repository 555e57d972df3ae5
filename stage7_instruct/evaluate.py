"""Score base, SFT and DPO models side by side, offline: `python -m stage7_instruct.evaluate`.

    python -m stage7_instruct.evaluate                              # the storybook GPT, SFT and DPO runs
    python -m stage7_instruct.evaluate --models runs/stage7_instruct/sft-mix-nomask-cpu
    python -m stage7_instruct.evaluate --story_prompts 50           # a quicker look

Per model (replies sampled at temperature 0.7, top-k 40, from a fixed seed, so every number is reproducible;
greedy decoding, --temperature 0, sends a model this small into loops that no instruction survives):
  - val loss on the responses (storybook and ch07 validation sets, prompt masked)
  - storybook test prompts (books the finetuning never read): the share of replies meeting every
    requirement, and each kind's pass rate; the chance control scores each gold passage against the
    next prompt's requirements (what "meets every requirement" gives without following anything)
  - ch07's 110 test entries: the share of replies that stop (<|end|>, or the base model's <|endoftext|>),
    distinct-2 (unique word pairs / all, 1 = no repetition), the share with a 4-gram repeated, exact and
    contained match where the reference is at most 5 words, and chrF against the reference (sacrebleu)
  - the 110 replies, written to runs/stage7_instruct/eval-<model>/ch07_test_replies.json for you to read
    or to hand to a judge model of your own

Each model's scores are recorded in runs/stage7_instruct/eval-<model>/metrics.json (`python -m shared.report`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from shared.cli import parse_config, run_main
from shared.devices import resolve_device
from shared.records import command_for, write_json, write_metrics
from stage7_instruct.config import DEFAULT_PRETRAINED, STAGE
from stage7_instruct.data import encode_instructions, load_instructions
from stage7_instruct.generation import Sampling, reply_tokens
from stage7_instruct.model import Parts, render_chat
from stage7_instruct.storybook import requirement_results
from stage7_instruct.train import load_chat_model, response_loss

DEFAULT_MODELS = f"pretrained,{STAGE}/sft-mix-cpu,{STAGE}/dpo-both-cpu"
SHORT_REFERENCE = 5  # words: exact / contains match only where the reference answer is this short


@dataclass(frozen=True)
class EvaluateConfig:
    models: str = field(default=DEFAULT_MODELS, metadata={
        "help": "comma-separated: pretrained (the storybook GPT with the template), stage 5 / 7 run folders, or "
                "names under runs/ (stage7_instruct/sft-mix-cpu); missing default runs are skipped"})
    story_prompts: int = field(default=200, metadata={"help": "storybook test prompts scored (0 = all)"})
    ch07_prompts: int = field(default=0, metadata={"help": "ch07 test entries scored (0 = all 110)"})
    max_new_tokens: int = field(default=160, metadata={"help": "longest reply"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of the replies; 0 = greedy"})
    top_k: int = field(default=40, metadata={"help": "sample among the k most likely tokens; 0 = all"})
    seed: int = field(default=1, metadata={"help": "the replies' random seed: each model samples from it afresh"})
    runs_dir: str = "runs"
    device: str = "auto"
    amp: bool = field(default=True, metadata={"help": "bf16 autocast where the device has it (--no-amp: fp32)"})

    def __post_init__(self) -> None:
        from shared.cli import check

        check(bool(self.models.strip()), "--models needs at least one model")
        check(self.story_prompts >= 0 and self.ch07_prompts >= 0, "--story_prompts and --ch07_prompts must be >= 0")
        check(self.max_new_tokens >= 1, "--max_new_tokens must be at least 1")
        check(self.temperature >= 0 and self.top_k >= 0, "--temperature and --top_k must be >= 0")


def words(text: str) -> list[str]:
    return text.lower().split()


def distinct_2(text: str) -> float:
    pairs = list(zip(words(text), words(text)[1:]))
    return len(set(pairs)) / len(pairs) if pairs else 1.0


def repeats_4gram(text: str) -> bool:
    w = words(text)
    grams = Counter(zip(w, w[1:], w[2:], w[3:]))
    return any(c > 1 for c in grams.values())


def normalise(text: str) -> str:
    return " ".join("".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace()).split())


def resolve_models(spec: str, runs_dir: str) -> list[tuple[str, str]]:
    """(name, path) of each model asked for; the default list skips runs that are not trained yet."""
    found = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        path = DEFAULT_PRETRAINED if item == "pretrained" else item
        if not Path(path).exists() and Path(runs_dir, item).exists():
            path = str(Path(runs_dir, item))
        if spec == DEFAULT_MODELS and item != "pretrained" and not Path(path).exists():
            continue
        name = "base" if item == "pretrained" else Path(path).name
        found.append((name, path))
    return found


def score_model(name: str, path: str, cfg: EvaluateConfig, device: torch.device, sets: dict) -> dict:
    parts = Parts()
    model, tokenizer, kind = load_chat_model(path, device)
    model.eval()
    use_amp = cfg.amp and device.type in ("cpu", "cuda")
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=use_amp and _bf16_ok(device))
    sampling = Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_k)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)  # the same draws for every model
    context = model.cfg.block_size
    scores: dict = {"kind": kind}
    started = time.perf_counter()

    def reply(prompt: str) -> tuple[str, bool]:
        ids, _ = render_chat([("user", prompt)], tokenizer)
        tokens = []
        budget = min(sampling.max_new_tokens, context - len(ids))
        for token in reply_tokens(model, ids, tokenizer, sampling, generator):
            tokens.append(token)
        stopped = len(tokens) < budget
        return tokenizer.decode(tokens), stopped

    with torch.no_grad(), autocast:
        for source in ("storybook", "ch07"):
            val = encode_instructions([x for x in sets["val"] if x.source == source], tokenizer, context, True,
                                      render_chat)
            scores[f"val_{source}_loss"] = round(response_loss(model, val, parts, tokenizer.end, device), 4)
        story = [x for x in sets["test"] if x.source == "storybook"]
        story = story[:cfg.story_prompts] if cfg.story_prompts else story
        all_met, per_kind = [], {}
        for item in story:
            text, _ = reply(item.prompt)
            results = requirement_results(item.story.requirements, text)
            all_met.append(all(results))
            for req, ok in zip(item.story.requirements, results):
                per_kind.setdefault(req.kind, []).append(ok)
        chance = [all(requirement_results(story[(i + 1) % len(story)].story.requirements, item.response))
                  for i, item in enumerate(story)]
        scores["story_all_met"] = round(sum(all_met) / max(1, len(all_met)), 4)
        scores["story_chance"] = round(sum(chance) / max(1, len(chance)), 4)
        for kind_name, oks in sorted(per_kind.items()):
            scores[f"story_{kind_name}"] = round(sum(oks) / len(oks), 4)
        ch07 = [x for x in sets["test"] if x.source == "ch07"]
        ch07 = ch07[:cfg.ch07_prompts] if cfg.ch07_prompts else ch07
        replies = []
        for item in ch07:
            text, stopped = reply(item.prompt)
            replies.append({"prompt": item.prompt, "reference": item.response, "reply": text, "stopped": stopped})
    n = max(1, len(replies))
    short = [r for r in replies if len(words(r["reference"])) <= SHORT_REFERENCE]
    import sacrebleu

    scores.update(
        ch07_stopped=round(sum(r["stopped"] for r in replies) / n, 4),
        ch07_distinct2=round(sum(distinct_2(r["reply"]) for r in replies) / n, 4),
        ch07_repeated_4gram=round(sum(repeats_4gram(r["reply"]) for r in replies) / n, 4),
        ch07_exact=round(sum(normalise(r["reply"]) == normalise(r["reference"]) for r in short)
                         / max(1, len(short)), 4),
        ch07_contains=round(sum(normalise(r["reference"]) in normalise(r["reply"]) for r in short)
                            / max(1, len(short)), 4),
        ch07_short_references=len(short),
        ch07_chrf=round(sacrebleu.corpus_chrf([r["reply"] for r in replies],
                                              [[r["reference"] for r in replies]]).score, 2) if replies else 0.0,
        story_prompts=len(story), ch07_prompts=len(replies), eval_seconds=round(time.perf_counter() - started, 1),
    )
    return {"scores": scores, "replies": replies, "params": model.num_params()}


def _bf16_ok(device: torch.device) -> bool:
    from shared.devices import resolve_amp

    return resolve_amp("auto", device) == torch.bfloat16


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    cfg = parse_config(EvaluateConfig, {}, argv, prog=f"python -m {STAGE}.evaluate",
                       description="Score base, SFT and DPO models side by side on the held-out prompts.")
    device = resolve_device(cfg.device)
    models = resolve_models(cfg.models, cfg.runs_dir)
    sets = load_instructions("mix")
    results = {}
    for name, path in models:
        print(f"scoring {name} ({path}) ...", flush=True)
        out = score_model(name, path, cfg, device, sets)
        results[name] = out["scores"]
        folder = Path(cfg.runs_dir) / STAGE / f"eval-{name}"
        write_json(folder / "ch07_test_replies.json", out["replies"])
        write_metrics(folder, {"stage": STAGE, "task": "instruct_eval", "model": name, "dataset": "instruct",
                               "preset": "eval", "params": out["params"], "device": str(device),
                               "train_seconds": 0.0, "init_from": path, **out["scores"],
                               "command": command_for(f"{STAGE}.evaluate", argv)})
    keys = [k for k in next(iter(results.values())) if k != "kind"] if results else []
    print("\n| metric | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for key in keys:
        print(f"| {key} | " + " | ".join(str(results[m].get(key, "")) for m in results) + " |")
    return results


if __name__ == "__main__":
    run_main(main)
