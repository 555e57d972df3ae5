"""The checks of stage 2's build-it-yourself parts (yours.py), run by `python -m shared.check stage2`.

Each cell runs against PyTorch's own cell (nn.RNNCell, nn.GRUCell, nn.LSTMCell) with the same
weights, and against the reference, on random inputs (fixed seeds): the new state and the gradients
of everything it depends on. `train --yours` builds the model with your parts (model.Parts) and
trains each window with your tbptt_step, on the settings below.
"""

from __future__ import annotations

import torch
from torch import nn

from shared.check import Part, Wrong, same, same_grads, seeded
from stage2_rnn_lstm.model import Parts, RecurrentLM, RNNConfig

TORCH_CELLS = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}


def _check_cell(kind: str, yours) -> None:
    seeded(0)
    cell = TORCH_CELLS[kind](5, 4)
    x = torch.randn(3, 5, requires_grad=True)
    h = torch.randn(3, 4, requires_grad=True)
    c = torch.randn(3, 4, requires_grad=True)
    state = (h, c) if kind == "lstm" else h
    x_proj = x @ cell.weight_ih.t() + cell.bias_ih  # (B, gates*H)
    got = yours(x_proj, state, cell.weight_hh, cell.bias_hh)
    theirs = cell(x, state)
    expected = Parts().cell(kind)(x_proj, state, cell.weight_hh, cell.bias_hh)
    if kind == "lstm":
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Wrong("return the pair (h', c')")
        same("c', against nn.LSTMCell", theirs[1], got[1])
        try:
            same("h', against nn.LSTMCell", theirs[0], got[0])
        except Wrong as err:  # c' is right, so the input, forget and candidate gates are: only o or tanh is left
            raise Wrong(f"{err}; c' is right, so i, f and g are: look at the output gate, h' = o * tanh(c')") from None
        out, ref_out = got[0] + 2 * got[1], expected[0] + 2 * expected[1]
    else:
        same(f"h', against nn.{TORCH_CELLS[kind].__name__}", theirs, got)
        out, ref_out = got, expected
    inputs = [x, h, cell.weight_hh, cell.bias_hh] + ([c] if kind == "lstm" else [])
    names = ["x", "h", "w_hh", "b_hh"] + (["c"] if kind == "lstm" else [])
    grad = torch.randn_like(out)
    same_grads("backward", torch.autograd.grad(ref_out, inputs, grad, retain_graph=True),
               torch.autograd.grad(out, inputs, grad, allow_unused=True), names)


def check_tbptt_step(yours) -> None:
    seeded(0)
    model = RecurrentLM(RNNConfig(vocab_size=11, model_type="lstm", embed_dim=6, hidden_size=8, num_layers=2,
                                  dropout=0.0, fast=True))
    x, y = torch.randint(0, 11, (3, 7)), torch.randint(0, 11, (3, 7))
    carried = (torch.randn(2, 3, 8), torch.randn(2, 3, 8))  # where the previous window ended
    result = yours(model, x, y, carried)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise Wrong("return the pair (loss, hidden)")
    loss, hidden = result
    ref_loss, ref_hidden = Parts().tbptt_step(model, x, y, carried)
    same("the loss of a window that starts from the carried state", ref_loss, loss)
    if not (isinstance(hidden, tuple) and len(hidden) == 2):
        raise Wrong("an LSTM's hidden state is the pair (h, c), each (num_layers, B, H): return both")
    for name, mine, ref in zip(("h", "c"), hidden, ref_hidden):
        same(f"the returned state {name}", ref, mine)
        if mine.requires_grad or mine.grad_fn is not None:
            raise Wrong(f"the returned state {name} still carries the graph of this window (grad_fn="
                        f"{type(mine.grad_fn).__name__}): detach it, or the next window backpropagates into this one")
    params = list(model.parameters())
    same_grads("the gradients of the loss", torch.autograd.grad(ref_loss, params),
               torch.autograd.grad(loss, params, allow_unused=True), [n for n, _ in model.named_parameters()])
    fresh = yours(model, x, y, None)[0]
    same("the loss of a window with no carried state (None: start from zeros)",
         Parts().tbptt_step(model, x, y, None)[0], fresh)


PARTS = [
    Part("rnn_cell", lambda f: _check_cell("rnn", f), "h' = torch.tanh(x_proj + h @ w_hh.t() + b_hh)"),
    Part("gru_cell", lambda f: _check_cell("gru", f),
         "split x_proj and h @ w_hh.t() + b_hh into (r, z, n) with .chunk(3, dim=-1); h' = (1 - z) * n + z * h"),
    Part("lstm_cell", lambda f: _check_cell("lstm", f),
         "PyTorch's order is input, forget, cell candidate (g), output: i, f, g, o = gates.chunk(4, dim=-1)"),
    Part("tbptt_step", check_tbptt_step,
         "logits, hidden = model(x, hidden); the loss over logits.flatten(0, 1) and y.flatten(); "
         "return hidden detached (h.detach() for each tensor of the state)"),
]

# The settings --yours trains with: the cells written out in Python, which call your cells, instead of
# nn.LSTM (cuDNN).
YOURS_SETTINGS = {"fast": False}
