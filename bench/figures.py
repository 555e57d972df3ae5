"""The theory pages' figures, drawn from recorded runs and from the course's code: `python bench/figures.py`.

Each figure is a small PNG in docs/figures/, drawn from a file in bench/results/ (a run's history.csv,
a bench table) or computed by the function the stage trains with; none is pasted by hand.
`--save_runs` first copies the histories of the runs the figures show from runs/ (where `make
pretrain` and `make instruct` put them) into bench/results/, so the figures can be drawn again from a
fresh clone. tests/test_docs.py checks every figure a page shows is one drawn here.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
RESULTS, FIGURES = REPO / "bench" / "results", REPO / "docs" / "figures"

# The recorded runs the figures show: bench/results/<name> <- runs/<folder>/history.csv (--save_runs).
SAVED_RUNS = {
    "stage5_storybook_cpu_history.csv": "stage5_gpt/gutenberg_children-cpu",  # make pretrain
    "stage7_sft_history.csv": "stage7_instruct/sft-mix-cpu",  # python -m stage7_instruct.train
    "stage7_sft_nomask_history.csv": "stage7_instruct/sft-mix-nomask-cpu",  # ... --no-mask_prompt
}


def rows(name: str) -> list[dict[str, float]]:
    with (RESULTS / name).open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def series(history: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    kept = [r for r in history if key in r]
    return [r["step"] for r in kept], [r[key] for r in kept]


def figure(width: float = 5.0, height: float = 3.0):
    import matplotlib

    matplotlib.use("Agg")  # files only; imported here so that reading this module (tests) needs no matplotlib
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    ax.grid(alpha=0.3)
    return fig, ax


def save(fig, name: str) -> Path:
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / name
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def storybook_curve() -> Path:
    """Stage 5: the storybook GPT's train and val loss over the tokens it has read."""
    history = rows("stage5_storybook_cpu_history.csv")
    tokens_per_step = 16 * 256  # the cpu preset: batch 16 x context 256
    fig, ax = figure()
    for key, label in (("train_loss", "train (last batches)"), ("val_loss", "val (131k tokens)")):
        steps, values = series(history, key)
        marker = "" if key == "train_loss" else "o"
        ax.plot([s * tokens_per_step / 1e6 for s in steps], values, label=label, marker=marker)
    ax.set(xlabel="tokens read (millions)", ylabel="loss (nats per token)", ylim=(3.5, 7),
           title="storybook GPT, cpu preset (the run of 2026-12-03)")
    ax.legend()
    return save(fig, "stage5_storybook_curve.png")


def lr_schedule() -> Path:
    """The training loop: linear warmup, then cosine decay to min_lr, as the storybook run recorded it."""
    steps, lr = series(rows("stage5_storybook_cpu_history.csv"), "lr")
    fig, ax = figure(5.0, 2.6)
    ax.plot(steps, [x * 1e3 for x in lr], marker=".")
    ax.axvline(200, color="grey", linestyle=":", label="end of warmup (200 steps)")
    ax.set(xlabel="step", ylabel="learning rate (x 1e-3)", title="warmup + cosine, as the storybook run logged it")
    ax.legend()
    return save(fig, "training_loop_lr_schedule.png")


def gpu_overfit() -> Path:
    """Stage 5: the Tiny Shakespeare gpu preset (one H100) reads its 1M characters ~40 times and overfits."""
    history = rows("stage5_gpu_eager_history.csv")
    fig, ax = figure()
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        ax.plot(*series(history, key), label=label, marker="" if key == "train_loss" else "o", markersize=3)
    steps, val = series(history, "val_loss")
    best = min(range(len(val)), key=val.__getitem__)
    ax.annotate("best checkpoint", (steps[best], val[best]), (steps[best] - 900, val[best] + 0.4),
                arrowprops=dict(arrowstyle="->"))
    ax.set(xlabel="step", ylabel="loss (nats per character)", ylim=(0.9, 2.6),
           title="Tiny Shakespeare, gpu preset, H100: val stalls")
    ax.legend()
    return save(fig, "stage5_gpu_overfit.png")


def bytes_per_token() -> Path:
    """Tokenization: how many bytes a token holds, by vocabulary size (bench/results/bpe_compression.md)."""
    lines = (RESULTS / "bpe_compression.md").read_text(encoding="utf-8").splitlines()
    head = next(line for line in lines if line.startswith("| tokenizer"))
    corpora = [c.strip() for c in head.strip("|").split("|")[1:]]
    fig, ax = figure()
    ours, gpt2 = [], None
    for line in lines:
        found = re.match(r"\| (ours|GPT-2), ([\d,]+) \|(.*)\|$", line)
        if found:
            point = (int(found.group(2).replace(",", "")), [float(x) for x in found.group(3).split("|")])
            ours.append(point) if found.group(1) == "ours" else (gpt2 := point)
    for i, corpus in enumerate(corpora):
        line, = ax.plot([v for v, _ in ours], [b[i] for _, b in ours], marker="o", label=corpus)
        if gpt2:
            ax.plot(gpt2[0], gpt2[1][i], marker="*", markersize=12, color=line.get_color())
    ax.set_xscale("log", base=2)
    ax.set(xlabel="vocabulary size (our BPE: dots; GPT-2's: stars)", ylabel="bytes per token",
           title="bigger vocabularies hold more text per token")
    ax.legend(fontsize=8)
    return save(fig, "tokenization_bytes_per_token.png")


def sinusoidal_positions() -> Path:
    """Stage 4: the position table of "Attention Is All You Need", computed by model.sinusoidal_positions."""
    from stage4_transformer.model import sinusoidal_positions as table
    fig, ax = figure(5.0, 2.8)
    image = ax.imshow(table(64, 128).numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    ax.grid(False)
    ax.set(xlabel="dimension", ylabel="position", title="sinusoidal positions: fast waves left, slow right")
    fig.colorbar(image, ax=ax)
    return save(fig, "stage4_sinusoidal_positions.png")


def sft_curves() -> Path:
    """Stage 7: the val reply loss of SFT with the prompt masked out of the loss, and with it in."""
    fig, ax = figure()
    for name, label, color in (("stage7_sft_history.csv", "replies only (default)", "C0"),
                               ("stage7_sft_nomask_history.csv", "prompt too (--no-mask_prompt)", "C1")):
        history = rows(name)
        for key, style in (("val_storybook_loss", "-"), ("val_ch07_loss", "--")):
            ax.plot(*series(history, key), style, color=color, marker="o", markersize=3,
                    label=f"{label}, {key.split('_')[1]}")
    ax.set(xlabel="step", ylabel="val loss on reply tokens", title="SFT: storybook prompts (solid), ch07 (dashed)")
    ax.legend(fontsize=7)
    return save(fig, "stage7_sft_curves.png")


def exercise_rows(exercise_id: str) -> list[dict[str, str]]:
    """The rows of one exercise's table in bench/results/exercises_cpu.md (what bench/exercises.py measured)."""
    text = (RESULTS / "exercises_cpu.md").read_text(encoding="utf-8")
    block = re.search(rf"^### {re.escape(exercise_id)} .*?(?=^### |\Z)", text, re.S | re.M).group(0)
    lines = [line for line in block.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]


def finetune_tradeoff() -> Path:
    """Stage 6: test accuracy against the parameters trained, for E6.2's layers and E6.3's LoRA ranks."""
    fig, ax = figure()
    for exercise_id, marker, label in (("E6.2", "o", "whole layers (E6.2)"), ("E6.3", "s", "LoRA (E6.3)")):
        table = exercise_rows(exercise_id)
        trained = [int(r["trained params"].replace(",", "")) for r in table]
        accuracy = [float(r["test accuracy"].split()[0]) for r in table]
        ax.plot(trained, accuracy, marker=marker, linestyle="", markersize=8, label=label)
        for x, y, r in zip(trained, accuracy, table):
            ax.annotate(r["setting"].replace(" (the default)", "").replace(" (the preset)", ""), (x, y),
                        (5, 5), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(200, 2e7)  # room for the labels
    ax.margins(y=0.15)
    ax.set(xlabel="parameters trained (log scale)", ylabel="SMS spam test accuracy (%)",
           title="finetuning the storybook GPT: one run each")
    ax.legend(fontsize=8, loc="upper left")
    return save(fig, "stage6_trained_params.png")


GRADIENT_REACH = "stage2_gradient_reach.csv"
REACH = 100  # characters back from the predicted one


def gradient_reach_from_runs() -> None:
    """How much of the loss at a character reaches each of the REACH characters before it: the norm of
    d loss / d embedding at each distance, averaged over 32 val windows, for E2.1's trained RNN, GRU and
    LSTM (bench/exercises.py's runs) and for the same cells freshly initialised."""
    import importlib.util

    import torch

    from stage2_rnn_lstm.data import load_streams
    from stage2_rnn_lstm.model import RecurrentLM
    from stage2_rnn_lstm.train import load_model

    spec = importlib.util.spec_from_file_location("exercises", REPO / "bench" / "exercises.py")
    exercises = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
    spec.loader.exec_module(exercises)
    val = load_streams("tinyshakespeare", "char").splits["val"]
    starts = torch.linspace(0, len(val) - REACH - 2, 32).long()
    windows = val[starts[:, None] + torch.arange(REACH + 1)]  # (32, REACH + 1)
    rows = ["cell,trained,distance,gradient_norm"]
    for label in ("RNN", "GRU", "LSTM (the preset)"):
        folder = exercises.run_folder(exercises.find(f"E2.1/{label}"), "1337")
        if not (folder / "best.pt").exists():
            sys.exit(f"{folder} has no run: python bench/exercises.py --only E2.1 first")
        trained, _, _ = load_model(folder / "best.pt")
        torch.manual_seed(0)
        fresh = RecurrentLM(trained.cfg)
        for name, model in (("trained", trained), ("initialised", fresh)):
            model.eval()
            x = model.embedding(windows[:, :-1]).detach().requires_grad_(True)  # (32, REACH, E)
            out, _ = model.rnn(x, model.init_hidden(len(windows)))
            loss = torch.nn.functional.cross_entropy(model.decoder(out[:, -1]), windows[:, -1])
            (grad,) = torch.autograd.grad(loss, [x])
            norms = grad.norm(dim=-1).mean(0)  # (REACH,), position 0 is the farthest back
            cell = label.split()[0]
            rows += [f"{cell},{name},{REACH - t},{norms[t].item():.6g}" for t in range(REACH)]
    (RESULTS / GRADIENT_REACH).write_text("\n".join(rows) + "\n")
    print(f"-> bench/results/{GRADIENT_REACH}")


def gradient_reach() -> Path:
    """Stage 2: how far back a gradient reaches, trained and freshly initialised cells."""
    with (RESULTS / GRADIENT_REACH).open(newline="") as f:
        table = list(csv.DictReader(f))
    fig, ax = figure()
    for i, cell in enumerate(("RNN", "GRU", "LSTM")):
        for state, style in (("trained", "-"), ("initialised", ":")):
            points = sorted((int(r["distance"]), float(r["gradient_norm"])) for r in table
                            if r["cell"] == cell and r["trained"] == state)
            ax.plot(*zip(*points), style, color=f"C{i}", label=f"{cell}, {state}")
    ax.set_yscale("log")
    ax.set(xlabel="characters back from the predicted one", ylabel="gradient norm reaching it",
           title="gradient reaching back, E2.1's runs")
    ax.legend(fontsize=7, ncol=2)
    return save(fig, "stage2_gradient_reach.png")


FIGURES_DRAWN = {"stage5_storybook_curve.png": storybook_curve, "training_loop_lr_schedule.png": lr_schedule,
                 "stage5_gpu_overfit.png": gpu_overfit, "tokenization_bytes_per_token.png": bytes_per_token,
                 "stage4_sinusoidal_positions.png": sinusoidal_positions, "stage7_sft_curves.png": sft_curves,
                 "stage6_trained_params.png": finetune_tradeoff, "stage2_gradient_reach.png": gradient_reach}


def save_runs() -> None:
    for name, folder in SAVED_RUNS.items():
        source = REPO / "runs" / folder / "history.csv"
        if not source.exists():
            sys.exit(f"{source} does not exist: train that run first (make pretrain, make instruct)")
        shutil.copyfile(source, RESULTS / name)
        print(f"{source.relative_to(REPO)} -> {(RESULTS / name).relative_to(REPO)}")
    gradient_reach_from_runs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save_runs", action="store_true", help="copy the runs' histories into bench/results first")
    args = parser.parse_args()
    if args.save_runs:
        save_runs()
    for draw in FIGURES_DRAWN.values():
        path = draw()
        print(f"{path.relative_to(REPO)}  {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
