"""Train a recurrent language model: `python -m stage2_rnn_lstm.train --model_type lstm --vocab_type char`.

    python -m stage2_rnn_lstm.train                                   # char LSTM on Tiny Shakespeare
    python -m stage2_rnn_lstm.train --model_type gru                  # or rnn
    python -m stage2_rnn_lstm.train --vocab_type word                 # word LSTM on WikiText-2
    python -m stage2_rnn_lstm.train --no-fast --preset tiny           # the cells written out in Python

Truncated backpropagation through time: the hidden state is carried from each batch to the next
(the rows continue each other) but detached, so gradients flow back at most --seq_len steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import torch
import torch.nn.functional as F

from shared.checkpoint import load_checkpoint
from shared.cli import UserError, run_main
from shared.metrics import TOP_K, next_token_hits
from shared.metrics import lm_metrics as shared_lm_metrics
from shared.run import Run, count_params
from shared.tokenizers import Vocab
from shared.train import make_adamw, train
from stage2_rnn_lstm.config import PRESETS, RNNTrainConfig
from stage2_rnn_lstm.data import ConsecutiveBatches, as_streams, load_streams
from stage2_rnn_lstm.model import Parts, RecurrentLM, RNNConfig

STAGE = "stage2_rnn_lstm"


def load_model(path, device: torch.device | str = "cpu", fast: bool | None = None) -> tuple[RecurrentLM, Vocab, dict]:
    """(model, vocab, training config dict) from a run folder or checkpoint written by train."""
    state = load_checkpoint(path, required=("model", "model_config", "vocab", "config"))
    settings = dict(state["model_config"])
    if "cell" in settings:  # checkpoints written before the field was named model_type
        settings["model_type"] = settings.pop("cell")
    if fast is not None:
        settings["fast"] = fast  # the two paths share parameter names: the same weights load into either
    try:
        model = RecurrentLM(RNNConfig(**settings))
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError):
        raise UserError(f"checkpoint {path} does not hold a stage 2 model of this version; train it again.") from None
    return model.to(device), Vocab.from_json(state["vocab"]), state["config"]


@torch.no_grad()
def score(model: RecurrentLM, ids: torch.Tensor, n_streams: int, max_tokens: int = 0,
          seq_len: int = 200) -> tuple[float, int, list[int]]:
    """Summed cross-entropy (nats), tokens scored, and how many were the model's top-1 and among its
    top-5 predictions, over a split (or its first max_tokens), the hidden state carried from start to
    end of each stream."""
    device = next(model.parameters()).device
    ids = ids[:max_tokens] if max_tokens else ids
    was_training = model.training
    model.eval()
    rows = as_streams(ids, n_streams).to(device)  # (S, N/S)
    hidden, total, count, hits = None, 0.0, 0, torch.zeros(len(TOP_K), dtype=torch.long, device=device)
    for start in range(0, rows.size(1) - 1, seq_len):
        x = rows[:, start:start + seq_len]
        y = rows[:, start + 1:start + seq_len + 1]
        x = x[:, : y.size(1)]
        logits, hidden = model(x, hidden)
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
        hits += next_token_hits(logits.flatten(0, 1), y.flatten())
        count += y.numel()
    model.train(was_training)
    return total, count, hits.tolist()


def lm_metrics(split: str, nats: float, tokens: int, vocab_type: str, hits: Sequence[int] = ()) -> dict[str, float]:
    """shared.metrics.lm_metrics for a model whose tokens are characters or words."""
    return shared_lm_metrics(split, nats, tokens, unit=vocab_type, hits=hits,
                             chars=tokens if vocab_type == "char" else 0)


def main(argv: Sequence[str] | None = None) -> dict:
    run = Run.start(STAGE, RNNTrainConfig, PRESETS, argv, "Train an RNN / GRU / LSTM language model.")
    cfg, device = run.cfg, run.device
    streams = load_streams(cfg.dataset, cfg.vocab_type, cfg.min_freq)
    parts = Parts(**run.yours)  # the reference, with your parts on top under --yours
    model = RecurrentLM(cfg.model_config(len(streams.vocab)), parts).to(device)
    print(f"{STAGE}: {cfg.model_type} on {cfg.dataset} ({cfg.vocab_type}s: {len(streams.splits['train']):,} train / "
          f"{len(streams.splits['val']):,} val, vocab {len(streams.vocab):,}), {count_params(model):,} parameters, "
          f"device {device}, run {run.dir}")

    batches = ConsecutiveBatches(streams.splits["train"], cfg.batch_size, cfg.seq_len, device)
    # The hidden state carried between batches. It is saved in every checkpoint (train() writes
    # extra_state as it is at that moment), so a resumed run continues with the state it stopped in.
    carry = {"hidden": run.resumed["carry"]["hidden"] if run.resumed else None}

    def loss_fn(m, batch):
        x, y, starts_epoch = batch  # (B, T), (B, T): this window continues the previous one, row by row
        loss, carry["hidden"] = parts.tbptt_step(m, x, y, None if starts_epoch else carry["hidden"])
        return loss, y.numel()

    def evaluate(m) -> dict[str, float]:
        nats, count, hits = score(m, streams.splits["val"], cfg.eval_streams, cfg.eval_tokens)
        return lm_metrics("val", nats, count, cfg.vocab_type, hits)

    extra = {"model_config": asdict(model.cfg), "vocab": streams.vocab.to_json(), "carry": carry, "stage": STAGE}
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, device)
    result = train(model, optimizer, run, batch_at=batches, loss_fn=loss_fn, evaluate=evaluate,
                   steps_per_epoch=batches.steps_per_epoch, extra_state=extra, item_name="tokens")

    model.load_state_dict(load_checkpoint(result.best_path)["model"])
    scores: dict[str, float] = {}
    for split in [s for s in ("val", "test") if s in streams.splits]:
        nats, count, hits = score(model, streams.splits[split], cfg.eval_streams, cfg.final_tokens)  # 0: all
        scores.update(lm_metrics(split, nats, count, cfg.vocab_type, hits))
    record = run.record(result, task="language_model", params=count_params(model),
                        model_name=f"{cfg.model_type.upper()} {cfg.num_layers}x{cfg.hidden_size} ({cfg.vocab_type})",
                        vocab_type=cfg.vocab_type, model_type=cfg.model_type, **scores)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in scores.items())
    print(f"{cfg.model_type} on {cfg.dataset}: {shown}  ({result.train_seconds:.1f} s of training)  -> {run.dir}")
    return record


if __name__ == "__main__":
    run_main(main)
