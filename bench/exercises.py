"""Run the exercises' commands and measure their answers: `python bench/exercises.py [--stages 1 2] [--write]`.

Every exercise in docs/exercises.md is a comparison of a few runs of a stage's own command. This
script runs each of them (once, or with several seeds), reads what the runs recorded (metrics.json,
or the evaluate command's eval-test.json) and prints one table per exercise: the numbers a learner
should get. Finished runs are reused (they live in runs/exercises/); --rerun trains them again.
--write puts each table into the "measured" block of its exercise in the exercises and their
solutions (docs/ and docs/zh/), and the whole output into bench/results/exercises_cpu.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "runs" / "exercises"
DOCS = [REPO / "docs" / name for name in
        ("exercises.md", "zh/exercises.md", "exercises_solutions.md", "zh/exercises_solutions.md")]
SEEDS = ("1337", "1", "2")


@dataclass
class Run:
    label: str
    module: str  # e.g. stage5_gpt.train
    flags: list[str]
    seeds: tuple[str, ...] = ("1337",)
    after: str = ""  # evaluate a finished run: "<exercise id>/<label>" of the run whose checkpoint it reads
    result: str = "metrics.json"
    rename: dict = field(default_factory=dict)  # read a column's key from another key of this run's result


@dataclass
class Exercise:
    id: str
    title: str
    runs: list[Run]
    columns: list[tuple[str, str, str]]  # (header, key in the result file, format: pct | f2 | f3 | int | s)
    notes: list[str] = field(default_factory=list)


def seeded(label, module, flags, seeds=SEEDS):
    return Run(label, module, flags, seeds)


def two_seeds(label, module, flags):
    """Runs of one to two minutes: two seeds, enough to see whether a difference is noise."""
    return Run(label, module, flags, SEEDS[:2])


S1, S2, S3, S4, S5, S6 = "stage1_mlp.train", "stage2_rnn_lstm.train", "stage3_attention_seq2seq.train", \
    "stage4_transformer.train", "stage5_gpt.train", "stage6_finetune_cls.train"
SFT, DPO = "stage7_instruct.train", "stage7_instruct.dpo"
SST2, TREC = ["--dataset", "sst2", "--preset", "cpu"], ["--dataset", "trec", "--preset", "cpu"]
LSTM_400 = ["--preset", "cpu", "--max_steps", "400", "--eval_interval", "400", "--warmup_steps", "40"]
SEQ2SEQ_150 = ["--preset", "cpu", "--max_steps", "150", "--eval_interval", "150", "--beam_size", "5"]
# The schedule the answers were measured with (1/sqrt after 100 warmup steps), not the cpu preset's cosine.
TRANSFORMER_200 = ["--preset", "cpu", "--max_steps", "200", "--eval_interval", "200", "--lr_schedule", "inverse_sqrt",
                   "--warmup_steps", "100", "--average_last", "1", "--beam_size", "5"]
GPT = ["--preset", "cpu"]
SPAM = ["--preset", "cpu"]  # stage 6 from the storybook GPT (make pretrain), SMS spam
LORA = [*SPAM, "--trainable", "lora"]
FINETUNED = [("test accuracy", "test_accuracy", "pct"), ("val accuracy", "val_accuracy", "pct"),
             ("trained params", "trainable_params", "int"), ("train s", "train_seconds", "f1")]
ACC = [("test accuracy", "test_accuracy", "pct"), ("val accuracy", "val_accuracy", "pct")]
SFT_CH07 = ["--preset", "cpu", "--data", "ch07", "--max_steps", "300", "--warmup_steps", "30", "--eval_interval", "300"]
DPO_CH07 = ["--preset", "cpu", "--pairs", "ch07"]  # from the SFT model of `python -m stage7_instruct.train`
PREFERENCE = [("test pair accuracy", "test_ch07_accuracy", "pct"), ("test reward margin", "test_ch07_margin", "f3"),
              ("val pair accuracy", "val_ch07_accuracy", "pct"), ("train s", "train_seconds", "f1")]
BLEU = [("sacreBLEU greedy", "test_bleu", "f2"), ("sacreBLEU beam 5", "test_bleu_beam", "f2"),
        ("train s", "train_seconds", "f1")]

EXERCISES = [
    Exercise("E1.1", "Word pairs on SST-2", [
        seeded("words (the preset)", S1, SST2),
        seeded("words + bigrams", S1, [*SST2, "--ngrams", "2"]),
    ], ACC),
    Exercise("E1.2", "Token dropout on SST-2", [
        seeded("token dropout 0.3 (the preset)", S1, SST2),
        seeded("no token dropout", S1, [*SST2, "--token_dropout", "0"]),
    ], ACC),
    Exercise("E1.3", "Sparse Adagrad or dense AdamW on TREC", [
        Run("Adagrad, sparse rows (the preset)", S1, [*TREC, "--epochs", "3"]),
        Run("AdamW, every row every step", S1, [*TREC, "--epochs", "3", "--optimizer", "adamw", "--lr", "1e-3"]),
    ], [("test accuracy", "test_accuracy", "pct"), ("samples/s", "samples_per_sec", "int"),
        ("train s", "train_seconds", "f1")]),
    Exercise("E1.4", "A hidden layer on TREC", [
        seeded("linear on the bag (the preset)", S1, TREC),
        seeded("one hidden layer of 128", S1, [*TREC, "--num_layers", "1", "--hidden_dim", "128"]),
    ], ACC),
    Exercise("E2.1", "RNN, GRU or LSTM, 400 steps", [
        Run("RNN", S2, [*LSTM_400, "--model_type", "rnn"]),
        Run("GRU", S2, [*LSTM_400, "--model_type", "gru"]),
        Run("LSTM (the preset)", S2, LSTM_400),
    ], [("val nats/char", "val_loss", "f3"), ("params", "params", "int")]),
    Exercise("E2.2", "How far back: the BPTT window at equal characters", [
        Run("100 steps back, 400 updates", S2, LSTM_400),
        Run("25 steps back, 1600 updates", S2, ["--preset", "cpu", "--max_steps", "1600", "--eval_interval", "1600",
                                                 "--warmup_steps", "40", "--seq_len", "25"]),
    ], [("val nats/char", "val_loss", "f3"), ("last train loss", "train_loss_last", "f3")]),
    Exercise("E2.3", "The Python loop against nn.LSTM", [
        Run("nn.LSTM (--fast)", S2, ["--preset", "cpu", "--max_steps", "30", "--eval_interval", "30"]),
        Run("the cells written out (--no-fast)", S2, ["--preset", "cpu", "--max_steps", "30", "--eval_interval",
                                                      "30", "--no-fast"]),
    ], [("chars/s", "tokens_per_sec", "int"), ("train s", "train_seconds", "f1")]),
    Exercise("E2.4", "A learning rate ten times larger", [
        two_seeds("lr 2e-3 (the preset)", S2, LSTM_400),
        two_seeds("lr 2e-2", S2, [*LSTM_400, "--lr", "2e-2"]),
    ], [("val nats/char", "val_loss", "f3")]),
    Exercise("E3.1", "Attention or the fixed summary, 150 steps", [
        Run("Bahdanau attention", S3, SEQ2SEQ_150),
        Run("no attention", S3, [*SEQ2SEQ_150, "--attention_type", "none"]),
    ], BLEU),
    Exercise("E3.2", "Additive or multiplicative scores, 150 steps", [
        Run("Bahdanau (additive)", S3, SEQ2SEQ_150),
        Run("Luong (multiplicative)", S3, [*SEQ2SEQ_150, "--attention_type", "luong"]),
    ], BLEU),
    Exercise("E3.3", "Beam width", [
        Run("greedy", "stage3_attention_seq2seq.evaluate", ["--beam_size", "1"], after="E3.1/Bahdanau attention",
            result="eval-test.json", rename={"bleu_beam": "bleu", "chrf_beam": "chrf"}),
        Run("beam 3", "stage3_attention_seq2seq.evaluate", ["--beam_size", "3"], after="E3.1/Bahdanau attention",
            result="eval-test.json"),
        Run("beam 10", "stage3_attention_seq2seq.evaluate", ["--beam_size", "10"], after="E3.1/Bahdanau attention",
            result="eval-test.json"),
    ], [("sacreBLEU", "bleu_beam", "f2"), ("chrF", "chrf_beam", "f2")]),
    Exercise("E3.4", "Teacher forcing half the time, 150 steps", [
        Run("teacher forcing 1.0 (the preset)", S3, SEQ2SEQ_150),
        Run("teacher forcing 0.5", S3, [*SEQ2SEQ_150, "--teacher_forcing", "0.5"]),
    ], BLEU),
    Exercise("E4.1", "Pre-LN or the paper's post-LN, 200 steps", [
        Run("pre-LN (the preset)", S4, TRANSFORMER_200),
        Run("post-LN", S4, [*TRANSFORMER_200, "--no-norm_first"]),
    ], BLEU[:2]),
    Exercise("E4.2", "Sinusoidal or learned positions, 200 steps", [
        Run("sinusoidal (the preset)", S4, TRANSFORMER_200),
        Run("learned", S4, [*TRANSFORMER_200, "--positions", "learned"]),
    ], BLEU[:2]),
    Exercise("E4.3", "Label smoothing, 200 steps", [
        Run("label smoothing 0.1 (the preset)", S4, TRANSFORMER_200),
        Run("no label smoothing", S4, [*TRANSFORMER_200, "--label_smoothing", "0"]),
    ], [*BLEU[:2], ("val loss", "val_loss_last", "f3")]),
    Exercise("E4.4", "The attention kernel: written out or F.scaled_dot_product_attention", [
        Run("sdpa (the preset)", S4, ["--preset", "cpu", "--max_steps", "30",
                                      "--eval_interval", "30", "--eval_pairs", "50", "--beam_size", "1"]),
        Run("written out (--attention manual)", S4, ["--preset", "cpu", "--max_steps", "30",
                                                     "--eval_interval", "30", "--eval_pairs", "50", "--beam_size",
                                                     "1", "--attention", "manual"]),
    ], [("tokens/s", "tokens_per_sec", "int"), ("train s", "train_seconds", "f1")]),
    Exercise("E5.1", "Learned positions or RoPE", [
        two_seeds("learned (the preset)", S5, GPT),
        two_seeds("RoPE", S5, [*GPT, "--position", "rope"]),
    ], [("val nats/char", "val_loss", "f3"), ("train s", "train_seconds", "f1")]),
    Exercise("E5.2", "GPT-2's block or LLaMA's (RMSNorm, SwiGLU, RoPE)", [
        two_seeds("GPT-2 (the preset)", S5, GPT),
        Run("RMSNorm + SwiGLU + RoPE", S5, [*GPT, "--norm", "rmsnorm", "--mlp", "swiglu", "--position", "rope"]),
    ], [("val nats/char", "val_loss", "f3"), ("params", "params", "int"), ("train s", "train_seconds", "f1")]),
    Exercise("E5.3", "How much context", [
        Run("32 characters", S5, [*GPT, "--block_size", "32"]),
        Run("64 characters (the preset)", S5, GPT),
        Run("128 characters", S5, [*GPT, "--block_size", "128"]),
    ], [("val nats/char", "val_loss", "f3"), ("train s", "train_seconds", "f1")]),
    Exercise("E5.4", "Dropout on a model that is still learning", [
        two_seeds("no dropout (the preset)", S5, GPT),
        Run("dropout 0.2", S5, [*GPT, "--dropout", "0.2"]),
    ], [("val nats/char", "val_loss", "f3"), ("last train loss", "train_loss_last", "f3")]),
    Exercise("E5.5", "Characters or a learned BPE (the tokenization chapter)", [
        two_seeds("characters (the preset)", S5, GPT),
        Run("BPE, 512 tokens", S5, [*GPT, "--tokenizer", "bpe", "--vocab_size", "512"]),
        Run("BPE, 2,048 tokens", S5, [*GPT, "--tokenizer", "bpe", "--vocab_size", "2048"]),
    ], [("val bits/byte", "val_bits_per_byte", "f3"), ("val nats/token", "val_loss", "f3"),
        ("params", "params", "int"), ("train s", "train_seconds", "f1")]),
    Exercise("E5.6", "Gradient accumulation (the training-loop chapter)", [
        two_seeds("batch 12 (the preset)", S5, GPT),
        Run("2 micro-batches of 6", S5, [*GPT, "--batch_size", "6", "--grad_accum", "2"]),
    ], [("val nats/char", "val_loss", "f3"), ("last train loss", "train_loss_last", "f3"),
        ("tokens/s", "tokens_per_sec", "int"), ("train s", "train_seconds", "f1")]),
    Exercise("E5.7", "Warmup and cosine, or a constant learning rate (the training-loop chapter)", [
        two_seeds("warmup + cosine (the preset)", S5, GPT),
        Run("constant, no warmup", S5, [*GPT, "--lr_schedule", "constant", "--warmup_steps", "0"]),
    ], [("val nats/char", "val_loss", "f3"), ("last train loss", "train_loss_last", "f3")]),
    Exercise("E6.1", "What pretraining is worth", [
        two_seeds("pretrained (the default)", S6, SPAM),
        two_seeds("random weights", S6, [*SPAM, "--init_from", "random"]),
    ], FINETUNED),
    Exercise("E6.2", "How much of the model to train", [
        Run("head only", S6, [*SPAM, "--trainable", "head"]),
        Run("last block (the default)", S6, SPAM),
        Run("last two blocks", S6, [*SPAM, "--trainable", "last_two_blocks"]),
    ], FINETUNED),
    Exercise("E6.3", "LoRA's rank", [
        Run("r = 2", S6, [*LORA, "--lora_rank", "2", "--lora_alpha", "4"]),
        Run("r = 8 (the preset)", S6, LORA),
        Run("r = 32", S6, [*LORA, "--lora_rank", "32", "--lora_alpha", "64"]),
    ], FINETUNED),
    Exercise("E7.1", "The prompt in the loss, or not", [
        Run("replies only (the default)", SFT, SFT_CH07),
        Run("prompt too (--no-mask_prompt)", SFT, [*SFT_CH07, "--no-mask_prompt"]),
    ], [("val ch07 reply loss", "val_ch07_loss", "f3"), ("train s", "train_seconds", "f1")]),
    Exercise("E7.2", "DPO's beta", [
        Run("beta 0.05", DPO, [*DPO_CH07, "--beta", "0.05"]),
        Run("beta 0.1 (the preset)", DPO, DPO_CH07),
        Run("beta 0.5", DPO, [*DPO_CH07, "--beta", "0.5"]),
    ], PREFERENCE),
]


def run_folder(run: Run, seed: str) -> Path:
    """One folder per command and seed: exercises that share a run (the preset, say) train it once."""
    digest = hashlib.sha1(" ".join([run.module, *run.flags, run.after]).encode()).hexdigest()[:10]
    return RUNS / f"{run.module.split('.')[0]}-{digest}" / ("seed" + seed)


def run_name(run: Run) -> str:
    """The learner's --run_name for a training command: named after the first exercise that runs it.

    Every command writes its own folder (runs/<stage>/e1.1-words-bigrams), so the second command of an
    exercise is not refused for the first one's run, and no command touches the learner's own runs; a
    command an earlier exercise already ran keeps that exercise's name, so its run is reused.
    """
    same = next((e, r) for e in EXERCISES for r in e.runs if (r.module, r.flags, r.after) == (run.module, run.flags,
                                                                                               run.after))
    words = re.sub(r"\(.*?\)", "", same[1].label.lower())  # "(the preset)", "(--no-fast)": not in names
    slug = "-".join(re.findall(r"[a-z0-9.]+", words.replace("+", " ")))
    return f"{same[0].id.lower()}-{slug}"


def learner_command(run: Run) -> str:
    """The command as the docs show it: the exercise's flags and its own run folder (or the run it reads)."""
    if run.after:  # an evaluate command reading another exercise's training run
        source = find(run.after)
        folder = f"runs/{source.module.split('.')[0]}/{run_name(source)}"
        return f"python -m {run.module} {' '.join(run.flags)} --checkpoint {folder}"
    return f"python -m {run.module} {' '.join(run.flags)} --run_name {run_name(run)}"


def find(reference: str) -> Run:
    ex_id, label = reference.split("/")
    return next(r for e in EXERCISES if e.id == ex_id for r in e.runs if r.label == label)


def execute(run: Run, seed: str, rerun: bool, exercise_id: str) -> dict:
    folder = run_folder(run, seed)
    result = folder / run.result
    if run.after:  # an evaluate command that reads another run's checkpoint
        source = run_folder(find(run.after), seed)
        execute(find(run.after), seed, False, exercise_id)
        if rerun or not result.exists():
            _call([sys.executable, "-m", run.module, "--checkpoint", str(source), *run.flags], exercise_id, run)
            folder.mkdir(parents=True, exist_ok=True)
            result.write_text((source / run.result).read_text())
    elif rerun or not result.exists():
        _call([sys.executable, "-m", run.module, *run.flags, "--seed", seed, "--out_dir", str(folder), "--overwrite"],
              exercise_id, run)
    record = json.loads(result.read_text())
    for key, source_key in run.rename.items():
        record[key] = record.get(source_key)
    history = folder / "history.csv"
    if history.exists():  # the last logged losses, for the exercises about fitting
        rows = list(csv.DictReader(history.open()))
        record["train_loss_last"] = float(next(r["train_loss"] for r in reversed(rows) if r.get("train_loss")))
        vals = [r["val_loss"] for r in rows if r.get("val_loss")]
        if vals:
            record["val_loss_last"] = float(vals[-1])
    return record


def _call(cmd: list[str], exercise_id: str, run: Run) -> None:
    started = time.perf_counter()
    print(f"[{exercise_id}] {run.label}: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{exercise_id} {run.label} failed:\n{done.stderr[-3000:]}")
    print(f"[{exercise_id}]   done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def fmt(values: list, kind: str) -> str:
    values = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return ""
    scale = 100 if kind == "pct" else 1
    digits = {"pct": 2, "f1": 1, "f2": 2, "f3": 3, "int": 0}[kind]
    mean = statistics.fmean(values) * scale
    text = f"{mean:,.{digits}f}"
    if len(values) > 1 and len(set(values)) > 1:  # the same count every seed (params) needs no ± 0
        text += f" ± {statistics.stdev(values) * scale:,.{digits}f}"
    return text


def table(exercise: Exercise, rerun: bool) -> str:
    head = ["setting", *[h for h, _, _ in exercise.columns], "runs", "command"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in exercise.runs:
        records = [execute(run, seed, rerun, exercise.id) for seed in run.seeds]
        cells = [fmt([r.get(key) for r in records], kind) for _, key, kind in exercise.columns]
        command = learner_command(run)
        seeds = f"{len(records)} (seeds {', '.join(run.seeds)})" if len(records) > 1 else "1"
        lines.append("| " + " | ".join([run.label, *cells, seeds, f"`{command}`"]) + " |")
    return "\n".join(lines)


def write_block(path: Path, exercise_id: str, text: str) -> None:
    doc = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- measured {re.escape(exercise_id)} -->\n).*?(<!-- /measured -->)", re.S)
    if not pattern.search(doc):
        sys.exit(f"{path} has no <!-- measured {exercise_id} --> block")
    path.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=["1", "2", "3", "4", "5", "6", "7"])
    parser.add_argument("--only", nargs="+", default=[], help="exercise ids, e.g. E3.1")
    parser.add_argument("--rerun", action="store_true", help="train the runs again instead of reusing them")
    parser.add_argument("--write", action="store_true", help="update the docs' measured blocks and bench/results")
    args = parser.parse_args()
    chosen = [e for e in EXERCISES if e.id[1] in args.stages and (not args.only or e.id in args.only)]
    machine = f"{platform.machine()} CPU, {__import__('os').cpu_count()} cores"
    out = [f"Measured {dt.date.today().isoformat()} on {machine} by `python bench/exercises.py`.\n"]
    for exercise in chosen:
        text = table(exercise, args.rerun)
        print(f"\n### {exercise.id} {exercise.title}\n\n{text}", flush=True)
        out.append(f"### {exercise.id} {exercise.title}\n\n{text}\n")
        if args.write:
            for doc in DOCS:
                write_block(doc, exercise.id, f"Measured on {machine} ({dt.date.today().isoformat()}):\n\n{text}\n")
    if args.write:
        results = REPO / "bench" / "results" / "exercises_cpu.md"
        previous = results.read_text(encoding="utf-8") if results.exists() else ""
        kept = [b for b in re.split(r"(?=^### )", previous, flags=re.M) if b.startswith("### ")
                and b.split()[1] not in {e.id for e in chosen}]
        blocks = sorted([b.strip() + "\n" for b in kept + out[1:]],  # one blank line between blocks, every time
                        key=lambda b: [int(x) for x in b.split()[1][1:].split(".")])
        results.write_text(out[0] + "\n" + "\n".join(blocks), encoding="utf-8")


if __name__ == "__main__":
    main()
