"""Comparison tables from every recorded run: `python -m shared.report [--runs_dir runs] [--task classification]`.

Reads every runs/<stage>/<run>/metrics.json into one pandas DataFrame (one row per run, one column
per key of the run record) and prints one markdown table per task and data set (classification:
accuracy / macro-F1; language models: perplexity; translation: sacreBLEU on detokenized text, and
lowercased BLEU on tokens, "tok. BLEU"), also written to runs/report.md (runs/report-<task>.md with
--task). Runs that differ only in their seed are folded into one row: mean ± std over the seeds, and
the number of seeds ("seeds").

The three steps, each a small function: `load_runs` (files -> DataFrame), `fold_seeds` (a groupby:
one row per configuration), `render` (rows -> markdown, with `markdown_table`).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

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
        ("tokens/s", "tokens_per_sec", "int"), ("MFU %", "mfu", "pct"),
    ]),
    ("Translation", "translation", [
        ("BLEU", "test_bleu", "f2"), ("BLEU beam", "test_bleu_beam", "f2"), ("chrF", "test_chrf", "f2"),
        ("tok. BLEU", "test_bleu_tok_lower", "f2"), ("tok. BLEU beam", "test_bleu_tok_lower_beam", "f2"),
        ("tokens/s", "tokens_per_sec", "int"),
    ]),
    ("Instruction tuning (stage 7 runs)", "instruct", [
        ("val storybook loss", "val_storybook_loss", "f3"), ("val ch07 loss", "val_ch07_loss", "f3"),
        ("DPO accuracy, ch07 test pairs", "test_ch07_accuracy", "pct"), ("DPO margin", "test_ch07_margin", "f3"),
    ]),
    ("Instruction following (held-out prompts, sampled replies at temperature 0.7)", "instruct_eval", [
        ("all requirements met", "story_all_met", "pct"), ("chance control", "story_chance", "pct"),
        ("uses the words", "story_word", "pct"), ("dialogue", "story_dialogue", "pct"),
        ("ch07 stopped", "ch07_stopped", "pct"), ("ch07 distinct-2", "ch07_distinct2", "f3"),
        ("ch07 repeated 4-gram", "ch07_repeated_4gram", "pct"), ("ch07 chrF", "ch07_chrf", "f2"),
        ("val storybook loss", "val_storybook_loss", "f3"), ("val ch07 loss", "val_ch07_loss", "f3"),
    ]),
]
COMMON_HEAD = [("stage", "stage"), ("dataset", "dataset"), ("model", "model"), ("preset", "preset")]
COMMON_TAIL = [("params", "params", "params"), ("train s", "train_seconds", "f1")]
# Every number a table shows (the columns that get a mean ± std), then the other keys the report reads.
SCORES = list(dict.fromkeys(key for _, _, columns in TABLES for _, key, _ in columns + COMMON_TAIL))
LABELS = ["task", "stage", "dataset", "model", "preset", "run", "steps", "interrupted", "yours", "device",
          "machine", "command"]
# What a run trained, on what and how. Runs that agree on all of it differ only in their seed (their folder
# names differ only in the -s<seed> ending) and share a row. An interrupted run (stopped before its last
# step) or one with the learner's own parts (--yours) never shares a row with the others.
SAME_CONFIGURATION = ["stage", "dataset", "model", "preset", "run_without_seed", "interrupted", "yours"]


def runs_table(records: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The runs as one DataFrame, one row per run. Every column the report reads is there (empty where no
    run recorded it) and every score is a number (empty where a run has none, e.g. no test perplexity)."""
    runs = pd.DataFrame(records)
    runs = runs.reindex(columns=runs.columns.union([*LABELS, *SCORES], sort=False))
    runs[SCORES] = runs[SCORES].apply(pd.to_numeric, errors="coerce")
    return runs


def load_runs(runs_dir: Path) -> pd.DataFrame:
    """Every runs/<stage>/<run>/metrics.json, one row per run, one column per key of the run record."""
    records = []
    for path in sorted(runs_dir.glob("*/*/metrics.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            print(f"warning: skipping unreadable {path}")
            continue
        record.setdefault("run", path.parent.name)
        records.append(record)
    return runs_table(records)


def fold_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (SAME_CONFIGURATION), in the order the runs come. A row has the first
    run's value of every column (the first recorded one), "seeds" (how many runs), and for every score
    "<score> mean", "<score> std" (over the seeds, n - 1 in the denominator) and "<score> n" (how many
    of the runs recorded it)."""
    runs = runs_table(runs).assign(
        run_without_seed=lambda r: r["run"].fillna("").astype(str).str.replace(r"-s\d+$", "", regex=True),
        interrupted=lambda r: r["interrupted"].eq(True), yours=lambda r: r["yours"].map(yours_mark))
    groups = runs.groupby(SAME_CONFIGURATION, sort=False, dropna=False)  # dropna=False: a run without a preset
    columns = {"seeds": groups.size()}
    for score in SCORES:
        columns |= {f"{score} mean": groups[score].mean(), f"{score} std": groups[score].std(),
                    f"{score} n": groups[score].count()}
    return pd.concat([groups.first(), pd.DataFrame(columns)], axis=1).reset_index()


def _fmt(value: Any, kind: str) -> str:
    if pd.isna(value):
        return ""
    if kind == "pct":
        return f"{100 * value:.2f}"
    if kind == "params":
        return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value / 1e3:.1f}k"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:.{kind[1]}f}"


def cell(row: pd.Series, key: str, kind: str) -> str:
    """One cell of a folded row: a label as it is; a score as "mean ± std" over the seeds, or its one value."""
    if kind == "s":
        return "" if pd.isna(row[key]) else str(row[key])
    if row[f"{key} n"] <= 1 or kind == "params":  # a model's size is the same for every seed: shown once
        return _fmt(row[key], kind)
    return f"{_fmt(row[f'{key} mean'], kind)} ± {_fmt(row[f'{key} std'], kind)}"


def yours_mark(parts: Any) -> str:
    """"" for the reference; "yours" for a run with the learner's parts (a list of their names, or True)."""
    return "yours" if parts is True or (isinstance(parts, (list, tuple)) and parts) else ""


def model_marks(row: pd.Series) -> str:
    """What the model column adds: (yours) for the learner's own parts, (yours, failing its check: X) when
    one of them does not pass, (interrupted) before its last step."""
    failing = row.get("yours_failing")
    marks = f" (yours, failing its check: {', '.join(failing)})" if isinstance(failing, list) and failing \
        else " (yours)" if row["yours"] else ""
    if row["interrupted"]:
        one_run = row["seeds"] == 1 and pd.notna(row["steps"]) and row["steps"]
        marks += f" (interrupted at step {int(row['steps'])})" if one_run else " (interrupted)"
    return marks


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table: the header, a |---| line, then one line per row, cells between | signs."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


DATASET_NOTES = {
    "tinyshakespeare": "The same validation text for every model (the last 10% of the play); "
                       "nats per character compare character and BPE models",
    "wikitext2": "Perplexity per token of each model's own tokenizer (words for stage 2, GPT-2 BPE for stage 5)",
    "sms_spam": "The same balanced split (1,045 / 149 / 300 messages) for stage 1, its baseline and stage 6",
}


def render(runs: pd.DataFrame | Sequence[dict[str, Any]]) -> str:
    """One markdown table per task and data set, so every table compares models on the same data."""
    runs = runs_table(runs)
    out = []
    if len(runs):
        known = runs.dropna(subset=["machine"])
        machines = sorted({f"{str(device).split(':')[0]}: {machine}"
                           for device, machine in zip(known["device"].fillna("?"), known["machine"])})
        out.append(f"Rendered {_dt.date.today().isoformat()} from {len(runs)} recorded runs "
                   f"(machines: {'; '.join(machines)}).\n")
    for title, task, columns in TABLES:
        cols = [(h, k, "s") for h, k in COMMON_HEAD if k != "dataset"] + columns + COMMON_TAIL + \
            [("device", "device", "s")]
        task_runs = runs[runs["task"] == task]
        for dataset in sorted(task_runs["dataset"].astype(str).unique()):
            out.append(f"### {title}: {dataset}\n")
            if dataset.split()[0] in DATASET_NOTES:
                out.append(f"{DATASET_NOTES[dataset.split()[0]]}.\n")
            rows = []
            for _, row in fold_seeds(task_runs[task_runs["dataset"].astype(str) == dataset]).iterrows():
                cells = [cell(row, key, kind) for _, key, kind in cols]
                cells[1] += model_marks(row)  # the model column
                rows.append([*cells, str(row["seeds"]), f"`{cell(row, 'command', 's')}`"])
            out.append(markdown_table([header for header, _, _ in cols] + ["seeds", "command"], rows))
            out.append("")
    return "\n".join(out) if out else "No recorded runs yet: train a stage first (see README).\n"


@dataclass(frozen=True)
class ReportConfig:
    runs_dir: str = field(default="runs", metadata={"help": "where the runs were recorded"})
    task: Literal["all", "classification", "language_model", "translation", "instruct", "instruct_eval"] = field(
        default="all", metadata={"help": "only this task's tables"})


def main(argv: Sequence[str] | None = None) -> str:
    cfg = parse_config(ReportConfig, {}, argv, prog="python -m shared.report",
                       description="Render the comparison tables of all recorded runs.")
    runs_dir = Path(cfg.runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} does not exist; train a stage first (e.g. python -m stage1_mlp.train).")
    runs = load_runs(runs_dir)
    if cfg.task != "all":
        runs = runs[runs["task"] == cfg.task]
    text = render(runs)
    print(text)
    (runs_dir / ("report.md" if cfg.task == "all" else f"report-{cfg.task}.md")).write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    run_main(main)
