"""What stages 3 and 4 both do around their models, as a library their train.py files call: decode
a split and score it (BLEU, chrF, teacher-forced loss), record a trained run's test scores, and the
`evaluate` / `translate` commands. Each stage trains its model with its own loop in its own train.py.
A model only has to provide the decoding interface of `shared.beam` (decode_start / decode_step /
reorder_state) and `forward(src, src_len, tgt) -> logits`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from shared.beam import beam_search, greedy_decode, greedy_step_of
from shared.checkpoint import latest_run, load_checkpoint
from shared.cli import UserError, check, config_from_dict, first_positional_as, parse_config
from shared.devices import resolve_device
from shared.records import write_results
from shared.runs import atomic_write, write_text
from shared.tokenizers import BOS_ID, EOS_ID, PAD_ID, Vocab
from shared.train import TrainResult, count_params
from shared.translation import (
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
            ids = greedy_decode(model, src, src_len, max_len, greedy_step_of(model))  # the model's own step
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


def describe(stage: str, cfg: TranslationConfig, data: TranslationData, model: nn.Module, run_dir: Path) -> str:
    """The line a train command prints before it starts."""
    return (f"{stage}: {cfg.dataset} {cfg.direction}, {len(data.src_ids['train']):,} train pairs, vocab "
            f"{len(data.src_vocab):,} / {len(data.tgt_vocab):,}, {count_params(model):,} parameters, device "
            f"{next(model.parameters()).device}, run {run_dir}")


def checkpoint_extras(stage: str, model_config: Any, data: TranslationData) -> dict:
    """What a checkpoint needs besides the weights to translate later: the model's shape and both vocabularies."""
    return {"model_config": asdict(model_config), "src_vocab": data.src_vocab.to_json(),
            "tgt_vocab": data.tgt_vocab.to_json(), "stage": stage}


def score_and_record(run, model: nn.Module, data: TranslationData, result: TrainResult, model_name: str,
                     **extra: Any) -> dict:
    """After training (the model holds the weights to score): translate the test split greedily and
    with beam search, write both hypothesis files and the run record, print the scores, return the record."""
    cfg = run.cfg
    started = time.perf_counter()
    greedy = score_split(model, data, "test", cfg, limit=cfg.test_pairs)
    greedy_seconds = time.perf_counter() - started
    beam = score_split(model, data, "test", cfg, beam_size=cfg.beam_size, limit=cfg.test_pairs)
    print_scores(f"{cfg.dataset} {cfg.direction} test", greedy, beam, cfg.beam_size)
    write_hypotheses(run.dir, greedy, beam, cfg.beam_size)
    record = run.record(
        result, task="translation", model_name=model_name, dataset=f"{cfg.dataset} {cfg.direction}",
        params=count_params(model), val_bleu=max((r.get("val_bleu", 0.0) for r in result.history), default=0.0),
        test_bleu=greedy["bleu"], test_chrf=greedy["chrf"], test_bleu_tok_lower=greedy["bleu_tok_lower"],
        test_bleu_beam=beam["bleu"], test_chrf_beam=beam["chrf"], test_bleu_tok_lower_beam=beam["bleu_tok_lower"],
        beam_size=cfg.beam_size, length_penalty=cfg.length_penalty, greedy_decode_seconds=round(greedy_seconds, 2),
        test_pairs=len(greedy["hypotheses"]), bleu_signature=greedy["bleu_signature"],
        chrf_signature=greedy["chrf_signature"], **extra)
    print(f"({result.train_seconds:.0f} s of training)  -> {run.dir}")
    return record


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

    raw = first_positional_as("--sentence", argv, TranslateConfig)  # `translate "a man is riding a bike ."`
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
