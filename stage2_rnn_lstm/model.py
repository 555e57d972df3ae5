"""Recurrent language models written from their equations: a vanilla RNN, a GRU and an LSTM.

    tokens (B, T) -> embedding -> [recurrent layer] x num_layers -> dropout -> linear -> logits (B, T, V)

Each cell is a few lines of its equations; `Recurrent` unrolls a cell over time, layer by layer,
with dropout between layers. The parameters have PyTorch's names and layouts (`weight_ih_l0`,
`weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, gates stacked in PyTorch's order), so a state dict moves
between the teaching path and the fast path (`nn.RNN` / `nn.GRU` / `nn.LSTM`, `--fast`) unchanged;
a test checks both give the same outputs and hidden states within 1e-5.

`Parts` holds the functions a learner writes in yours.py (`python -m shared.check stage2`): the
three cells, which the written-out layers call, and `tbptt_step`, one window of training, which
train.py calls. The reference is the default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shared.cli import derived

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # h (L, B, H), or (h, c) for the LSTM
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def rnn_cell(x_proj: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor,
             record: list | None = None) -> torch.Tensor:
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh); x_proj = W_ih x + b_ih is precomputed for all steps."""
    return torch.tanh(x_proj + h @ w_hh.t() + b_hh)  # (B, H)


def gru_cell(x_proj: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor,
             record: list | None = None) -> torch.Tensor:
    """r = σ(.), z = σ(.): reset and update gates; n = tanh(W_in x + r * (W_hn h)); h' = (1 - z) n + z h.
    `record`, when given, collects the gates of each step (for plotting)."""
    xr, xz, xn = x_proj.chunk(3, dim=-1)  # 3 x (B, H)
    hr, hz, hn = (h @ w_hh.t() + b_hh).chunk(3, dim=-1)  # 3 x (B, H)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    if record is not None:
        record.append({"reset": r, "update": z})
    n = torch.tanh(xn + r * hn)  # the reset gate decides how much of the past the candidate sees
    return (1 - z) * n + z * h  # (B, H): z near 1 copies the old state through: a gradient highway


def lstm_cell(x_proj: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], w_hh: torch.Tensor,
              b_hh: torch.Tensor, record: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """i, f, o = σ(.): input, forget, output gates; g = tanh(.); c' = f c + i g; h' = o tanh(c')."""
    h, c = state
    i, f, g, o = (x_proj + h @ w_hh.t() + b_hh).chunk(4, dim=-1)  # 4 x (B, H), PyTorch's gate order
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    if record is not None:
        record.append({"input": i, "forget": f, "output": o})
    c = f * c + i * torch.tanh(g)  # the cell state changes additively
    h = o * torch.tanh(c)
    return h, c  # (B, H), (B, H)


def detach(hidden: Hidden) -> Hidden:
    """Cut the graph at a batch boundary (truncated BPTT): keep the values, drop the history."""
    return tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()


def tbptt_step(model: RecurrentLM, x: torch.Tensor, y: torch.Tensor,
               hidden: Hidden | None) -> tuple[torch.Tensor, Hidden]:
    """One window of truncated backpropagation through time: run the model over x (B, T) starting from
    the state the previous window ended in, the mean cross-entropy against y (B, T), and the final
    state detached: the next window starts from its values, but no gradient flows back past here."""
    logits, hidden = model(x, hidden)  # (B, T, V)
    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    return loss, detach(hidden)


@dataclass(frozen=True)
class Parts:
    """The functions the model is built from: `Parts()` is the reference, `Parts(**yours)` puts the
    learner's (from yours.py, through --yours) on top. The written-out layers (`--no-fast`) call the
    cell of their model_type; train.py trains each window with tbptt_step."""

    rnn_cell: Callable[..., torch.Tensor] = rnn_cell
    gru_cell: Callable[..., torch.Tensor] = gru_cell
    lstm_cell: Callable[..., tuple[torch.Tensor, torch.Tensor]] = lstm_cell
    tbptt_step: Callable[..., tuple[torch.Tensor, Hidden]] = tbptt_step

    def cell(self, model_type: str) -> Callable:
        """The cell function of "rnn", "gru" or "lstm"."""
        return {"rnn": self.rnn_cell, "gru": self.gru_cell, "lstm": self.lstm_cell}[model_type]


class Recurrent(nn.Module):
    """A multi-layer recurrent network unrolled in Python, parameter for parameter like nn.RNN/GRU/LSTM
    with batch_first=True; each step calls the cell of `parts` (the reference by default)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
                 parts: Parts | None = None):
        super().__init__()
        self.cell, self.hidden_size, self.num_layers, self.dropout = cell, hidden_size, num_layers, dropout
        self.parts = parts or Parts()
        gates = GATES[cell] * hidden_size
        bound = 1 / math.sqrt(hidden_size)  # PyTorch's initialisation: U(-1/sqrt(H), 1/sqrt(H))
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size
            for name, shape in [("weight_ih", (gates, fan_in)), ("weight_hh", (gates, hidden_size)),
                                ("bias_ih", (gates,)), ("bias_hh", (gates,))]:
                self.register_parameter(f"{name}_l{layer}", nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """x (B, T, input) and the initial hidden state -> outputs (B, T, H) and the final hidden state."""
        step = self.parts.cell(self.cell)  # rnn_cell, gru_cell or lstm_cell
        finals = []
        for layer in range(self.num_layers):
            w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(self, f"bias_ih_l{layer}"), getattr(self, f"bias_hh_l{layer}")
            x_proj = x @ w_ih.t() + b_ih  # (B, T, gates*H): the input's share, for all steps in one matmul
            state = (hidden[0][layer], hidden[1][layer]) if self.cell == "lstm" else hidden[layer]
            outputs = []
            for t in range(x.size(1)):  # the recurrence itself is sequential
                state = step(x_proj[:, t], state, w_hh, b_hh)
                outputs.append(state[0] if self.cell == "lstm" else state)
            x = torch.stack(outputs, dim=1)  # (B, T, H)
            if layer < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, self.training)
            finals.append(state)
        if self.cell == "lstm":
            return x, (torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals]))
        return x, torch.stack(finals)  # (L, B, H)


@dataclass(frozen=True)
class RNNConfig:
    """The model's shape. The training config inherits these fields, so each is also a flag."""

    vocab_size: int = derived(0, "set from the vocabulary")
    model_type: Literal["rnn", "gru", "lstm"] = field(default="lstm", metadata={"help": "the recurrent cell"})
    embed_dim: int = 128
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.2
    fast: bool = field(default=True, metadata={
        "help": "nn.LSTM/GRU/RNN (cuDNN on GPUs) or the cells written out in Python (--no-fast)"})
    tie_weights: bool = field(default=False, metadata={
        "help": "share embedding and output weights (needs embed_dim == hidden_size)"})


def recurrent_layers(cfg: RNNConfig, parts: Parts | None = None) -> nn.Module:
    """nn.RNN / nn.GRU / nn.LSTM (--fast), or the same layers unrolled from the cells of `parts` (--no-fast)."""
    if cfg.fast:
        torch_class = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cfg.model_type]
        return torch_class(cfg.embed_dim, cfg.hidden_size, cfg.num_layers, batch_first=True,
                           dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
    return Recurrent(cfg.model_type, cfg.embed_dim, cfg.hidden_size, cfg.num_layers, cfg.dropout, parts)


class RecurrentLM(nn.Module):
    def __init__(self, cfg: RNNConfig, parts: Parts | None = None):
        super().__init__()
        self.cfg, self.parts = cfg, parts or Parts()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.rnn = recurrent_layers(cfg, self.parts)
        self.drop = nn.Dropout(cfg.dropout)
        self.decoder = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        if cfg.tie_weights:
            if cfg.embed_dim != cfg.hidden_size:
                raise ValueError("tie_weights needs embed_dim == hidden_size")
            self.decoder.weight = self.embedding.weight

    def init_hidden(self, batch_size: int, device: torch.device | None = None) -> Hidden:
        shape = (self.cfg.num_layers, batch_size, self.cfg.hidden_size)
        zeros = torch.zeros(shape, device=device or self.decoder.weight.device)
        return (zeros, zeros.clone()) if self.cfg.model_type == "lstm" else zeros

    def forward(self, idx: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """idx (B, T) -> logits (B, T, V) and the hidden state after the last step."""
        if hidden is None:
            hidden = self.init_hidden(idx.size(0), idx.device)
        x = self.drop(self.embedding(idx))  # (B, T, E)
        out, hidden = self.rnn(x, hidden)  # (B, T, H)
        return self.decoder(self.drop(out)), hidden  # (B, T, V)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, generator: torch.Generator | None = None):
        """Yield (B, 1) token ids continuing idx (B, T). The hidden state is the whole memory: after
        reading the prompt once, each new token costs one step, however long the text gets."""
        from shared.sampling import sample_next

        logits, hidden = self(idx)
        for _ in range(max_new_tokens):
            next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
            yield next_id
            logits, hidden = self(next_id, hidden)


# --------------------------------------------------------------------------- the same cells, classifying


class RecurrentClassifier(nn.Module):
    """Read a text word by word with the recurrent layers above, then classify it from its outputs.

    tokens (B, T), right-padded -> embedding -> recurrent layers -> pool over the real positions -> linear
    `pool`: "max" (each unit's largest value anywhere in the text: a word that decides, wherever it is),
    "mean", or "last" (the state after the last real word: the whole text read, in order).
    `bidirectional`: a second stack reads each text from its last word back to its first, so the vector at
    a word also knows the words after it ("not" in "not at all good" is read after "good" too).
    """

    def __init__(self, cfg: RNNConfig, num_classes: int, pool: str = "max", bidirectional: bool = False,
                 parts: Parts | None = None):
        super().__init__()
        self.cfg, self.pool, self.parts = cfg, pool, parts or Parts()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=0)  # <pad> = 0
        self.rnn = recurrent_layers(cfg, self.parts)
        self.rnn_backward = recurrent_layers(cfg, self.parts) if bidirectional else None
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size * (2 if bidirectional else 1), num_classes)

    def read(self, rnn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, E) -> the outputs at every position (B, T, H), from a zero state."""
        zeros = torch.zeros((self.cfg.num_layers, x.size(0), self.cfg.hidden_size), device=x.device)
        return rnn(x, (zeros, zeros) if self.cfg.model_type == "lstm" else zeros)[0]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> logits (B, classes). Padding comes after the words and the layers only look back,
        so the outputs at real positions do not depend on it; pooling skips the padded positions."""
        x = self.drop(self.embedding(idx))  # (B, T, E)
        real = (idx != 0).unsqueeze(-1)  # (B, T, 1)
        lengths = real.sum(1).clamp_min(1)  # (B, 1)
        out = self.read(self.rnn, x)  # (B, T, H)
        last = lengths - 1  # (B, 1): where the whole text has been read
        if self.rnn_backward is not None:
            t = torch.arange(idx.size(1), device=idx.device)
            flip = torch.where(t < lengths, lengths - 1 - t, t).unsqueeze(-1)  # (B, T, 1): word t <-> word L-1-t
            back = self.read(self.rnn_backward, x.gather(1, flip.expand(-1, -1, x.size(-1))))  # (B, T, H)
            back = back.gather(1, flip.expand(-1, -1, back.size(-1)))  # (B, T, H), back in reading order
            out = torch.cat([out, back], dim=-1)  # (B, T, 2H)
        if self.pool == "last":
            pooled = out.gather(1, last.unsqueeze(-1).expand(-1, 1, out.size(-1))).squeeze(1)  # (B, H or 2H)
            if self.rnn_backward is not None:  # the backward stack has read the whole text at the first word
                pooled = torch.cat([pooled[:, : self.cfg.hidden_size], out[:, 0, self.cfg.hidden_size:]], dim=-1)
        elif self.pool == "mean":
            pooled = (out * real).sum(1) / lengths  # (B, H or 2H)
        else:
            pooled = out.masked_fill(~real, float("-inf")).amax(1).nan_to_num(neginf=0.0)  # empty text: 0
        return self.head(self.drop(pooled))  # (B, classes)
