"""Loss and perplexity of a trained GPT on val/test: `python -m stage5_gpt.evaluate [--checkpoint RUN]`.

Per token, and in the units that compare models with different tokenizers: nats and bits per
character (Tiny Shakespeare: the number stage 2's LSTM reports) and perplexity per word (WikiText).
A Hugging Face GPT-2 folder works too: `--checkpoint path/to/gpt2 --dataset wikitext2`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from shared.checkpoint import latest_run
from shared.cli import UserError, check, config_from_dict, parse_config, run_main
from shared.devices import resolve_device
from shared.records import write_results
from stage5_gpt.config import GPTTrainConfig
from stage5_gpt.data import load_corpus
from stage5_gpt.train import STAGE, load_model, score_split


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str = field(default="", metadata={"help": "run folder, .pt or HF GPT-2 folder; default: latest run"})
    dataset: str = field(default="", metadata={"help": "default: the data set the model was trained on"})
    split: Literal["val", "test", "all"] = "all"
    block_size: int = field(default=0, metadata={"help": "context per scored window; 0 = the model's"})
    batch_size: int = 16
    max_tokens: int = field(default=0, metadata={"help": "score this many evenly spaced tokens of each split; "
                                                        "0 = all of it"})
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"

    def __post_init__(self) -> None:
        check(self.block_size >= 0 and self.batch_size >= 1, "--block_size must be >= 0 and --batch_size >= 1")
        check(self.max_tokens >= 0, "--max_tokens must be >= 0")


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    cfg = parse_config(EvalConfig, {}, argv, prog=f"python -m {STAGE}.evaluate",
                       description="Loss and perplexity of a trained GPT on val and test.")
    source = Path(cfg.checkpoint) if cfg.checkpoint else latest_run(STAGE)
    device = resolve_device(cfg.device)
    model, tokenizer, saved = load_model(source, device)
    if saved is None:  # a Hugging Face GPT-2 folder
        train_cfg = GPTTrainConfig(dataset=cfg.dataset or "wikitext2", tokenizer="gpt2")
    else:
        train_cfg = config_from_dict(GPTTrainConfig, {**saved, **({"dataset": cfg.dataset} if cfg.dataset else {})})
    block = cfg.block_size or model.cfg.block_size
    check(block <= model.cfg.block_size, f"--block_size must be at most the model's context ({model.cfg.block_size})")
    train_cfg = config_from_dict(GPTTrainConfig, {**train_cfg.__dict__, "block_size": block,
                                                   "batch_size": cfg.batch_size, "resume": False})
    corpus = load_corpus(train_cfg.dataset, train_cfg.tokenizer_name, train_cfg.text_file, train_cfg.vocab_size)
    if corpus.tokenizer.to_json() != tokenizer.to_json():
        raise UserError(f"the model's tokenizer does not match {train_cfg.dataset}'s; evaluate it on the data set "
                        f"it was trained on (or one with the same tokenizer).")
    splits = [s for s in ("val", "test") if s in corpus.splits and cfg.split in (s, "all")]
    if not splits:
        raise UserError(f"{train_cfg.dataset} has no {cfg.split} split; use --split val.")
    model.eval()
    results: dict[str, float] = {}
    with torch.no_grad():
        for split in splits:
            results.update(score_split(model, corpus, split, train_cfg, device, cfg.max_tokens))
    print(f"{source} on {train_cfg.dataset} ({tokenizer.kind} tokens, context {block}):")
    for key, value in results.items():
        print(f"  {key:24s} {value:.4f}")
    folder = source if source.is_dir() else source.parent
    if saved is not None:  # a run folder: keep the numbers beside it
        write_results(folder / f"eval-{train_cfg.dataset}.json", {"checkpoint": str(source), **results})
    return results


if __name__ == "__main__":
    run_main(main)
