"""Build it yourself: the recurrent cells and truncated backpropagation through time. Write each
function below, then

    python -m shared.check stage2            # one line per part: passed / not implemented yet / wrong
    python -m stage2_rnn_lstm.train --yours  # the real model, trained with your parts

The reference is in model.py; try without it first. Theory: docs/stage2_rnn_lstm.md
(sections named below). Shapes: B batch, H hidden size, T time steps, V vocabulary.

Every cell gets x_proj = W_ih x + b_ih already computed (for all time steps at once, one matmul), the
previous state, and the recurrent weights W_hh (gates*H, H) and bias b_hh (gates*H,). The gates are
stacked in PyTorch's order, so your cell runs with nn.RNN / nn.GRU / nn.LSTM's weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401


def rnn_cell(x_proj: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """h' = tanh(x_proj + W_hh h + b_hh)                         (docs: "1. The recurrence")

    x_proj (B, H), h (B, H), w_hh (H, H), b_hh (H,)  ->  h' (B, H)
    """
    raise NotImplementedError


def gru_cell(x_proj: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """The GRU, gates in PyTorch's order r, z, n                  (docs: "3. Gates: the LSTM and the GRU")

    x_proj (B, 3H) = [x_r, x_z, x_n], W_hh h + b_hh (B, 3H) = [h_r, h_z, h_n]
      r  = σ(x_r + h_r)                 reset gate
      z  = σ(x_z + h_z)                 update gate
      n  = tanh(x_n + r * h_n)          candidate state
      h' = (1 - z) * n + z * h          (B, H): z near 1 keeps the old state
    """
    raise NotImplementedError


def lstm_cell(x_proj: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], w_hh: torch.Tensor,
              b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM, gates in PyTorch's order i, f, g, o              (docs: "3. Gates: the LSTM and the GRU")

    x_proj (B, 4H), state (h, c) each (B, H), w_hh (4H, H), b_hh (4H,)
      [i, f, g, o] = x_proj + W_hh h + b_hh, split into four (B, H)
      i, f, o = σ(i), σ(f), σ(o)        input, forget, output gates;  g = tanh(g)
      c' = f * c + i * g
      h' = o * tanh(c')
    Returns (h', c').
    """
    raise NotImplementedError


def tbptt_step(model, x: torch.Tensor, y: torch.Tensor, hidden):
    """One window of truncated backpropagation through time     (docs: "4. Truncated BPTT with a carried state")

    model: a model.RecurrentLM; model(x, hidden) -> (logits (B, T, V), the final hidden state)
    x, y (B, T): this window's inputs and next-token targets; each row continues the text of the same
    row of the previous window, so start from `hidden`, the state that window ended in (None: zeros).
    Returns (the mean cross-entropy of logits against y, the final hidden state detached from the
    graph: an LSTM's state is a pair (h, c), detach both). The next window starts from those values,
    but gradients stop at the window's start: that is what makes the backpropagation truncated.
    """
    raise NotImplementedError
