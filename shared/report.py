"""Comparison tables from every recorded run: `python -m shared.report [--runs_dir runs] [--task classification]`.

Reads runs/<stage>/<run>/metrics.json and prints one markdown table per task (classification:
accuracy / macro-F1; language models: perplexity; translation: sacreBLEU on detokenized text, and
lowercased BLEU on tokens, "tok. BLEU"), also written to runs/report.md (runs/report-<task>.md with
--task). Runs that differ only in their seed are folded into one row, mean ± std.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shared.cli import UserError, parse_config, run_main

# (title, task, [(column header, metrics key, format)])
TABLES: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    ("Classification (held-out split)", "classification", [
        ("accuracy", "test_accuracy", "pct"), ("macro-F1", "test_f1", "pct"),
        ("trained params", "trainable_params", "params"),
    ]),
    ("Language models", "language_model", [
        ("val loss", "val_loss", "f3"), ("val nats/char", "val_loss_per_char", "f3"),
        ("val ppl", "val_perplexity", "f2"), ("test ppl", "test_perplexity", "f2"),
        ("val top-1", "val_top1_accuracy", "pct"), ("val top-5", "val_top5_accuracy", "pct"),
        ("tokens/s", "tokens_per_sec", "int"),
    ]),
    ("Translation", "translation", [
        ("BLEU", "test_bleu", "f2"), ("BLEU beam", "test_bleu_beam", "f2"), ("chrF", "test_chrf", "f2"),
        ("tok. BLEU", "test_bleu_tok_lower", "f2"), ("tok. BLEU beam", "test_bleu_tok_lower_beam", "f2"),
        ("tokens/s", "tokens_per_sec", "int"),
    ]),
]
COMMON_HEAD = [("stage", "stage"), ("dataset", "dataset"), ("model", "model"), ("preset", "preset")]
COMMON_TAIL = [("params", "params", "params"), ("train s", "train_seconds", "f1")]


def load_runs(runs_dir: Path) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(runs_dir.glob("*/*/metrics.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            print(f"warning: skipping unreadable {path}")
            continue
        record.setdefault("run", path.parent.name)
        runs.append(record)
    return runs


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "pct":
        return f"{100 * value:.2f}"
    if kind == "params":
        return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value / 1e3:.1f}k"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:.{kind[1]}f}"


def _cell(values: list[Any], kind: str) -> str:
    values = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return ""
    if len(values) == 1 or kind == "params":
        return _fmt(values[0], kind)
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return f"{_fmt(mean, kind)} ± {_fmt(std, kind)}"


def group_by_seed(runs: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs with the same stage, data set, model and preset, differing only in seed, share a row.
    Interrupted runs (Ctrl-C before the end) are never folded in with finished ones: they get their own row."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        key = (run.get("stage"), run.get("dataset"), run.get("model"), run.get("preset"),
               re.sub(r"-s\d+$", "", run.get("run", "")), bool(run.get("interrupted")), bool(run.get("yours")))
        groups.setdefault(key, []).append(run)
    return list(groups.values())


DATASET_NOTES = {
    "tinyshakespeare": "The same validation text for every model (the last 10% of the play); "
                       "nats per character compare character and BPE models",
    "wikitext2": "Perplexity per token of each model's own tokenizer (words for stage 2, GPT-2 BPE for stage 5)",
    "sms_spam": "The same balanced split (1,045 / 149 / 300 messages) for stage 1, its baseline and stage 6",
}


def render(runs: Sequence[dict[str, Any]]) -> str:
    """One markdown table per task and data set, so every table compares models on the same data."""
    out = []
    if runs:
        machines = sorted({f"{r.get('device', '?').split(':')[0]}: {r['machine']}" for r in runs if r.get("machine")})
        out.append(f"Rendered {_dt.date.today().isoformat()} from {len(runs)} recorded runs "
                   f"(machines: {'; '.join(machines)}).\n")
    for title, task, columns in TABLES:
        rows = [r for r in runs if r.get("task") == task]
        for dataset in sorted({str(r.get("dataset")) for r in rows}):
            subset = [r for r in rows if str(r.get("dataset")) == dataset]
            cols = [(h, k, "s") for h, k in COMMON_HEAD if k != "dataset"] + columns + COMMON_TAIL + \
                [("device", "device", "s")]
            out.append(f"### {title}: {dataset}\n")
            if dataset.split()[0] in DATASET_NOTES:
                out.append(f"{DATASET_NOTES[dataset.split()[0]]}.\n")
            out.append("| " + " | ".join(h for h, _, _ in cols) + " | seeds | command |")
            out.append("|" + "---|" * (len(cols) + 2))
            for group in group_by_seed(subset):
                cells = []
                for _, key, kind in cols:
                    values = [r.get(key) for r in group]
                    cells.append(str(values[0] or "") if kind == "s" else _cell(values, kind))
                if group[0].get("yours"):  # trained with the learner's own parts (--yours)
                    cells[cols.index(("model", "model", "s"))] += " (yours)"
                if group[0].get("interrupted"):  # marked: it stopped before its last step
                    at = f" at step {group[0].get('steps')}" if len(group) == 1 and group[0].get("steps") else ""
                    cells[cols.index(("model", "model", "s"))] += f" (interrupted{at})"
                command = group[0].get("command", "")
                out.append("| " + " | ".join(cells) + f" | {len(group)} | `{command}` |")
            out.append("")
    return "\n".join(out) if out else "No recorded runs yet: train a stage first (see README).\n"


@dataclass(frozen=True)
class ReportConfig:
    runs_dir: str = field(default="runs", metadata={"help": "where the runs were recorded"})
    task: Literal["all", "classification", "language_model", "translation"] = field(
        default="all", metadata={"help": "only this task's tables"})


def main(argv: Sequence[str] | None = None) -> str:
    cfg = parse_config(ReportConfig, {}, argv, prog="python -m shared.report",
                       description="Render the comparison tables of all recorded runs.")
    runs_dir = Path(cfg.runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} does not exist; train a stage first (e.g. python -m stage1_mlp.train).")
    runs = [r for r in load_runs(runs_dir) if cfg.task in ("all", r.get("task"))]
    text = render(runs)
    print(text)
    (runs_dir / ("report.md" if cfg.task == "all" else f"report-{cfg.task}.md")).write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    run_main(main)
