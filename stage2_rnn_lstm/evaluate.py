"""Loss, perplexity and bits per character (or per word) of a trained model on val/test.

    python -m stage2_rnn_lstm.evaluate --checkpoint runs/stage2_rnn_lstm/tinyshakespeare-lstm-cpu
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from shared.checkpoint import latest_run
from shared.cli import check, parse_config, run_main
from shared.devices import resolve_device
from shared.records import write_results
from stage2_rnn_lstm.data import load_streams
from stage2_rnn_lstm.model import Parts
from stage2_rnn_lstm.train import STAGE, lm_metrics, load_model, score


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str = field(default="", metadata={"help": "a run folder or .pt file; default: the latest run"})
    split: Literal["val", "test", "all"] = "all"
    eval_streams: int = field(default=1, metadata={"help": "1: the whole text as one stream (exact, slower)"})
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"

    def __post_init__(self) -> None:
        check(self.eval_streams >= 1, "--eval_streams must be at least 1 (1 = the whole text as one stream)")


def lstm_gates(model, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The first layer's gate activations at every step of one sequence idx (1, T), computed by the
    model's own cell equations from its weights (either path): LSTM -> input, forget, output gates;
    GRU -> reset, update gates. Each (T, H). The reference cells record them (a learner's cell need not)."""
    rnn, cell = model.rnn, Parts().cell(model.cfg.model_type)
    state = model.init_hidden(1, idx.device)
    state = (state[0][0], state[1][0]) if model.cfg.model_type == "lstm" else state[0]  # layer 0: (1, H)
    record: list[dict[str, torch.Tensor]] = []
    with torch.no_grad():
        x_proj = model.embedding(idx) @ rnn.weight_ih_l0.t() + rnn.bias_ih_l0  # (1, T, gates*H)
        for t in range(idx.size(1)):
            state = cell(x_proj[:, t], state, rnn.weight_hh_l0, rnn.bias_hh_l0, record)
    return {name: torch.stack([step[name][0] for step in record]) for name in record[0]}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    cfg = parse_config(EvalConfig, {}, argv, prog=f"python -m {STAGE}.evaluate",
                       description="Loss, perplexity and bits per token of a trained recurrent LM.")
    device = resolve_device(cfg.device)  # first: a device this machine lacks fails at once
    source = Path(cfg.checkpoint) if cfg.checkpoint else latest_run(STAGE)
    model, vocab, train_cfg = load_model(source, device)
    streams = load_streams(train_cfg["dataset"], train_cfg["vocab_type"], train_cfg.get("min_freq", 1))
    results: dict[str, float] = {}
    for split in [s for s in ("val", "test") if s in streams.splits and cfg.split in (s, "all")]:
        nats, count, hits = score(model, streams.splits[split], cfg.eval_streams)
        results.update(lm_metrics(split, nats, count, train_cfg["vocab_type"], hits))
    print(f"{source} ({train_cfg['model_type']} on {train_cfg['dataset']}, {train_cfg['vocab_type']}s):")
    for key, value in results.items():
        print(f"  {key:24s} {value:.4f}")
    folder = source if source.is_dir() else source.parent
    write_results(folder / "eval.json", {"checkpoint": str(source), "eval_streams": cfg.eval_streams, **results})
    return results


if __name__ == "__main__":
    run_main(main)
