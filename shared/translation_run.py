"""What stages 3 and 4 do around their models: train one, decode a split, score it, record the run,
and the `evaluate` / `translate` commands. A model only has to provide the decoding interface of
`shared.beam` (decode_start / decode_step / reorder_state) and `forward(src, src_len, tgt) -> logits`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from shared.beam import beam_search, greedy_decode
from shared.checkpoint import latest_run, load_checkpoint, save_checkpoint
from shared.cli import UserError, check, config_from_dict, first_positional_as, parse_config
from shared.devices import resolve_device
from shared.records import command_for, write_metrics, write_results
from shared.runs import atomic_write, write_text
from shared.tokenizers import BOS_ID, EOS_ID, PAD_ID, Vocab
from shared.train import count_params, train
from shared.translation import (
    PairBatches,
    TranslationConfig,
    TranslationData,
    bleu_scores,
    build_data,
    detokenize,
    load_pairs,
    pad,
    tokenize,
)


@torch.no_grad()
def translate_ids(model: nn.Module, src_ids: Sequence[Sequence[int]], beam_size: int, max_len: int,
                  alpha: float, batch_size: int = 100) -> list[list[int]]:
    """Target ids for each source; sentences of similar length are decoded together (less padding)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
    out: list[list[int]] = [[] for _ in src_ids]
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        src, src_len = pad([src_ids[i] for i in chunk])
        src, src_len = src.to(device), src_len.to(device)
        if beam_size == 1:
            ids = greedy_decode(model, src, src_len, max_len)
        else:
            ids = beam_search(model, src, src_len, beam_size, max_len, alpha)
        for i, hyp in zip(chunk, ids):
            out[i] = hyp
    model.train(was_training)
    return out


def score_split(model: nn.Module, data: TranslationData, split: str, cfg: TranslationConfig,
                beam_size: int = 1, limit: int = 0) -> dict[str, Any]:
    """BLEU / chrF of the model's translations of one split, or of its first `limit` pairs."""
    n = limit or len(data.src_ids[split])
    ids = translate_ids(model, data.src_ids[split][:n], beam_size, cfg.max_decode_len, cfg.length_penalty)
    return bleu_scores([data.tgt_vocab.decode(h) for h in ids], data.text.tgt[split][:n])


@torch.no_grad()
def teacher_forced_loss(model: nn.Module, data: TranslationData, split: str, limit: int = 0,
                        batch_size: int = 100) -> float:
    """Mean cross-entropy per target token with the true previous tokens fed in."""
    device = next(model.parameters()).device
    n = limit or len(data.src_ids[split])
    src_ids, tgt_ids = data.src_ids[split][:n], data.tgt_ids[split][:n]
    total, count = 0.0, 0
    for start in range(0, n, batch_size):
        src, src_len = pad(src_ids[start:start + batch_size])
        tgt, _ = pad(tgt_ids[start:start + batch_size])
        src, src_len, tgt = src.to(device), src_len.to(device), tgt.to(device)
        logits = model(src, src_len, tgt)  # (B, T-1, V)
        total += float(F.cross_entropy(logits.flatten(0, 1).float(), tgt[:, 1:].flatten(), ignore_index=PAD_ID,
                                       reduction="sum"))
        count += int((tgt[:, 1:] != PAD_ID).sum())
    return total / count


def prepare_data(cfg: TranslationConfig, vocabs: tuple[Vocab, Vocab] | None = None) -> TranslationData:
    text = load_pairs(cfg.dataset, cfg.src, cfg.tgt, cfg.max_train_pairs, cfg.seed)
    src_vocab, tgt_vocab = vocabs or (None, None)
    return build_data(text, cfg.min_freq, cfg.max_len, src_vocab, tgt_vocab)


def train_translation(stage: str, cfg: TranslationConfig, model: nn.Module, data: TranslationData,
                      model_config: dict, model_name: str, argv: Sequence[str] | None,
                      forward_options: dict | None = None, optimizer: torch.optim.Optimizer | None = None,
                      average_last: int = 1) -> dict:
    """Train with the shared loop (best checkpoint by val BLEU, greedy), then score the test split
    greedy and with beam search, write the hypotheses and metrics.json, and return the record.

    average_last > 1: also average the weights of the last N evaluations (checkpoint averaging, as
    in "Attention Is All You Need"); the average replaces best.pt if it scores higher on val.
    """
    device = next(model.parameters()).device
    run_dir = cfg.run_dir(stage)
    print(f"{stage}: {cfg.dataset} {cfg.direction}, {len(data.src_ids['train']):,} train pairs, vocab "
          f"{len(data.src_vocab):,} / {len(data.tgt_vocab):,}, {count_params(model):,} parameters, device {device}, "
          f"run {run_dir}")
    batches = PairBatches(data, cfg.batch_size, cfg.seed, device)
    options = forward_options or {}

    def loss_fn(m, batch):
        src, src_len, tgt = batch
        logits = m(src, src_len, tgt, **options)  # (B, T-1, V)
        target = tgt[:, 1:]  # (B, T-1)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD_ID,
                               label_smoothing=cfg.label_smoothing)
        return loss, int((target != PAD_ID).sum())

    recent: deque[dict[str, torch.Tensor]] = deque(maxlen=average_last)

    def evaluate(m) -> dict[str, float]:
        if average_last > 1:
            recent.append({k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()})
        val = score_split(m, data, "val", cfg, limit=cfg.eval_pairs)
        return {"val_loss": teacher_forced_loss(m, data, "val", cfg.eval_pairs), "val_bleu": val["bleu"]}

    extra = {"model_config": model_config, "src_vocab": data.src_vocab.to_json(),
             "tgt_vocab": data.tgt_vocab.to_json(), "stage": stage}
    result = train(model, cfg, batch_at=batches, loss_fn=loss_fn, evaluate=evaluate, run_dir=run_dir,
                   steps_per_epoch=batches.steps_per_epoch, extra_state=extra, optimizer=optimizer,
                   item_name="tokens", select_by="val_bleu")

    best = load_checkpoint(result.best_path)
    model.load_state_dict(best["model"])
    averaged = len(recent) > 1 and average_into_best(model, recent, best, result.best_path, data, cfg)
    started = time.perf_counter()
    greedy = score_split(model, data, "test", cfg)
    greedy_seconds = time.perf_counter() - started
    beam = score_split(model, data, "test", cfg, beam_size=cfg.beam_size)
    write_hypotheses(run_dir, greedy, beam, cfg.beam_size)
    record = write_metrics(run_dir, {
        "stage": stage, "task": "translation", "model": model_name, "dataset": f"{cfg.dataset} {cfg.direction}",
        "preset": cfg.preset, "seed": cfg.seed, "params": count_params(model), "device": str(device),
        "steps": result.steps, "train_seconds": round(result.train_seconds, 2),
        "tokens_per_sec": round(result.items_per_sec), "interrupted": result.interrupted,
        "out_of_time": result.out_of_time,
        "val_bleu": max((r.get("val_bleu", 0.0) for r in result.history), default=0.0),
        "test_bleu": greedy["bleu"], "test_chrf": greedy["chrf"], "test_bleu_tok_lower": greedy["bleu_tok_lower"],
        "test_bleu_beam": beam["bleu"], "test_chrf_beam": beam["chrf"],
        "test_bleu_tok_lower_beam": beam["bleu_tok_lower"], "beam_size": cfg.beam_size,
        "length_penalty": cfg.length_penalty, "greedy_decode_seconds": round(greedy_seconds, 2),
        "checkpoint_average": len(recent) if averaged else 1,
        "bleu_signature": greedy["bleu_signature"], "chrf_signature": greedy["chrf_signature"],
        "command": command_for(f"{stage}.train", argv),
    })
    print_scores(f"{cfg.dataset} {cfg.direction} test", greedy, beam, cfg.beam_size)
    print(f"({result.train_seconds:.0f} s of training)  -> {run_dir}")
    return record


def average_into_best(model: nn.Module, states: Sequence[dict[str, torch.Tensor]], best: dict, best_path: Path,
                      data: TranslationData, cfg: TranslationConfig) -> bool:
    """Load the mean of `states` into the model if it beats the best checkpoint on val BLEU (and save it
    as best.pt); otherwise leave the best checkpoint's weights. Returns whether the average won."""
    device = next(model.parameters()).device
    best_bleu = score_split(model, data, "val", cfg)["bleu"]
    mean = {k: torch.stack([s[k].float() for s in states]).mean(0).to(states[-1][k].dtype) for k in states[-1]}
    model.load_state_dict({k: v.to(device) for k, v in mean.items()})
    avg_bleu = score_split(model, data, "val", cfg)["bleu"]
    print(f"checkpoint averaging: the mean of the last {len(states)} evaluations scores val BLEU {avg_bleu:.2f} "
          f"vs {best_bleu:.2f} for the best single one")
    if avg_bleu > best_bleu:
        save_checkpoint(best_path, {**best, "model": mean})
        return True
    model.load_state_dict(best["model"])
    return False


def write_hypotheses(folder: Path, greedy: dict, beam: dict | None, beam_size: int) -> None:
    write_text(folder / "test.greedy.txt", "\n".join(greedy["hypotheses"]) + "\n")
    if beam is not None:
        write_text(folder / f"test.beam{beam_size}.txt", "\n".join(beam["hypotheses"]) + "\n")


def print_scores(title: str, greedy: dict, beam: dict | None, beam_size: int) -> None:
    print(f"{title}: greedy sacreBLEU {greedy['bleu']:.2f}  chrF {greedy['chrf']:.2f}  "
          f"(lowercased tokenized BLEU {greedy['bleu_tok_lower']:.2f})")
    if beam is not None:
        print(f"{title}: beam {beam_size} sacreBLEU {beam['bleu']:.2f}  chrF {beam['chrf']:.2f}  "
              f"(lowercased tokenized BLEU {beam['bleu_tok_lower']:.2f})")
    print(f"signature: {greedy['bleu_signature']}")


# --------------------------------------------------------------------------- the commands


Loader = Callable[[str, torch.device], tuple[nn.Module, TranslationConfig, tuple[Vocab, Vocab]]]


def load_translation_checkpoint(path: str | Path, config_cls: type, build: Callable[[dict], nn.Module],
                                device: torch.device) -> tuple[nn.Module, TranslationConfig, tuple[Vocab, Vocab]]:
    """(model, its training config, (source vocab, target vocab)) from a checkpoint written by train."""
    state = load_checkpoint(path, required=("model", "model_config", "config", "src_vocab", "tgt_vocab"))
    try:
        model = build(state["model_config"])
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError, KeyError):
        raise UserError(f"checkpoint {path} does not hold this stage's model; train it again.") from None
    cfg = config_from_dict(config_cls, {**state["config"], "resume": False})
    return model.to(device).eval(), cfg, (Vocab.from_json(state["src_vocab"]), Vocab.from_json(state["tgt_vocab"]))


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str = field(default="", metadata={"help": "run folder or .pt; default: the latest run"})
    split: Literal["test", "val"] = "test"
    beam_size: int = field(default=0, metadata={"help": "0 = the run's --beam_size; 1 = greedy only"})
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"

    def __post_init__(self) -> None:
        check(self.beam_size >= 0, "--beam_size must be >= 0")


def evaluate_main(stage: str, load: Loader, argv: Sequence[str] | None) -> dict:
    args = parse_config(EvalConfig, {}, argv, prog=f"python -m {stage}.evaluate",
                        description="sacreBLEU and chrF of a trained model on a whole split.")
    device = resolve_device(args.device)  # first: a device this machine lacks fails at once
    source = Path(args.checkpoint) if args.checkpoint else latest_run(stage)
    model, cfg, vocabs = load(str(source), device)
    data = prepare_data(cfg, vocabs)
    beam_size = args.beam_size or cfg.beam_size
    greedy = score_split(model, data, args.split, cfg)
    beam = score_split(model, data, args.split, cfg, beam_size) if beam_size > 1 else None
    folder = source if source.is_dir() else source.parent
    print_scores(f"{cfg.dataset} {cfg.direction} {args.split}", greedy, beam, beam_size)
    results = {"checkpoint": str(source), "split": args.split,
               **{k: v for k, v in greedy.items() if k != "hypotheses"},
               **({f"{k}_beam": v for k, v in beam.items() if k != "hypotheses"} if beam else {})}
    write_results(folder / f"eval-{args.split}.json", results)
    if args.split == "test":
        write_hypotheses(folder, greedy, beam, beam_size)
    return results


@dataclass(frozen=True)
class TranslateConfig:
    sentence: str = field(default="", metadata={"help": "the sentence to translate (or give it positionally)"})
    checkpoint: str = field(default="", metadata={"help": "run folder or .pt; default: the latest run"})
    beam_size: int = field(default=5, metadata={"help": "1 = greedy"})
    show_attention: str = field(default="", metadata={"help": "save the attention heatmap to this PNG"})
    device: Literal["auto", "cpu", "cuda", "mps"] = "cpu"

    def __post_init__(self) -> None:
        check(self.beam_size >= 1, "--beam_size must be at least 1")


def translate_main(stage: str, load: Loader, argv: Sequence[str] | None) -> str:
    import sys

    raw = first_positional_as("--sentence", argv)  # `translate "a man is riding a bike ."`
    args = parse_config(TranslateConfig, {}, raw, prog=f"python -m {stage}.translate",
                        description="Translate one sentence with a trained model.")
    device = resolve_device(args.device)  # first: a device this machine lacks fails at once
    check(bool(args.sentence.strip()), 'give a sentence to translate, e.g. translate "a man is riding a bike ."')
    source = Path(args.checkpoint) if args.checkpoint else latest_run(stage)
    model, cfg, (src_vocab, tgt_vocab) = load(str(source), device)
    src_tokens = tokenize(args.sentence)[:cfg.max_len]
    unknown = [t for t in src_tokens if t not in src_vocab]
    if unknown:
        print(f"note: not in the {cfg.src} vocabulary, read as <unk>: {', '.join(unknown)}", file=sys.stderr)
    src_ids = src_vocab.encode(src_tokens) + [EOS_ID]
    hyp = translate_ids(model, [src_ids], args.beam_size, cfg.max_decode_len, cfg.length_penalty)[0]
    out_tokens = tgt_vocab.decode(hyp)
    translation = detokenize(out_tokens)
    print(translation)
    if args.show_attention:
        save_attention_png(model, src_ids, hyp, src_tokens + ["<eos>"], out_tokens + ["<eos>"], args.show_attention)
        print(f"attention heatmap -> {args.show_attention}", file=sys.stderr)
    return translation


def save_attention_png(model: nn.Module, src_ids: list[int], hyp: list[int], src_labels: list[str],
                       tgt_labels: list[str], path: str) -> None:
    """Heatmap of which source tokens each output token attended to (the model's attention_map)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = next(model.parameters()).device
    src = torch.tensor([src_ids], device=device)
    tgt = torch.tensor([[BOS_ID] + hyp + [EOS_ID]], device=device)
    weights = model.attention_map(src, torch.tensor([len(src_ids)], device=device), tgt).cpu()  # (T, S)
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(src_labels), 1 + 0.4 * len(tgt_labels)))
    ax.imshow(weights.numpy(), cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(src_labels)), src_labels, rotation=60, ha="right")
    ax.set_yticks(range(len(tgt_labels)), tgt_labels)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.tight_layout()
    try:
        with atomic_write(path, binary=True) as fh:
            fig.savefig(fh, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=120)
    except ValueError as err:  # an image format matplotlib does not know
        raise UserError(f"cannot save {path}: {err}; give a .png path.") from None
    finally:
        plt.close(fig)
