"""Take a trained GPT out of this course: `python -m stage5_gpt.export --checkpoint RUN --format F --out DIR`.

--format hf           a Hugging Face folder: config.json, model.safetensors and the tokenizer's files;
                      `GPT2LMHeadModel.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)`
                      load it (GPT-2's architecture only: learned positions, LayerNorm, GELU).
--format safetensors  our own weights and config, any architecture (RoPE, RMSNorm, SwiGLU too):
                      model.safetensors + config.json (the model config and the tokenizer).
--format onnx         model.onnx, input_ids (batch, sequence) -> logits (batch, sequence, vocab), any
                      sequence length up to the context; run it with onnxruntime (the `onnx` extra).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from shared.checkpoint import latest_run
from shared.cli import UserError, check, parse_config, run_main
from stage5_gpt.hf import export_hf_gpt2, export_hf_tokenizer
from stage5_gpt.model import GPT
from stage5_gpt.train import STAGE, load_model


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: str = field(default="", metadata={"help": "run folder or .pt file; default: the latest run"})
    format: Literal["hf", "safetensors", "onnx"] = "hf"
    out: str = field(default="", metadata={"help": "the folder to write (created; files in it are replaced)"})

    def __post_init__(self) -> None:
        check(bool(self.out), "--out is required: the folder to write the exported model to")


class Logits(torch.nn.Module):
    """The model with one input and one output, as ONNX wants it: input_ids -> logits."""

    def __init__(self, gpt: GPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.gpt(input_ids)[0]  # (B, T, V)


def export_onnx(model: GPT, path: Path) -> Path:
    """model.onnx with dynamic batch and sequence length (at most the context), traced by torch.export."""
    import warnings

    try:
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError:
        raise UserError("--format onnx needs the onnx extra: pip install -e \".[onnx]\"") from None
    example = torch.zeros(2, min(8, model.cfg.block_size), dtype=torch.long)
    shapes = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence", min=1, max=model.cfg.block_size)},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(model).eval(), (example,), str(path), input_names=["input_ids"],
                          output_names=["logits"], dynamic_shapes=shapes, dynamo=True, verbose=False)
    return path


def main(argv: Sequence[str] | None = None) -> Path:
    cfg = parse_config(ExportConfig, {}, argv, prog=f"python -m {STAGE}.export",
                       description="Export a trained GPT to Hugging Face, safetensors or ONNX.")
    source = Path(cfg.checkpoint) if cfg.checkpoint else latest_run(STAGE)
    # The written-out attention: plain matrix products and a softmax, which every runtime has.
    model, tokenizer, _ = load_model(source, "cpu", attention="manual", dropout=0.0)
    model.eval()
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder to write the exported model into.")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.format == "hf":
        shape = (model.cfg.position, model.cfg.norm, model.cfg.mlp)
        if shape != ("learned", "layernorm", "gelu"):
            raise UserError(f"GPT-2's Hugging Face format holds learned positions, LayerNorm and GELU, not this "
                            f"model's {' + '.join(shape)}; export it with --format safetensors or --format onnx.")
        vocab = tokenizer.size if tokenizer.kind == "gpt2" else None  # crop GPT-2's padding rows (50,304 -> 50,257)
        export_hf_gpt2(model, out, vocab_size=vocab, eot_id=tokenizer.eot if tokenizer.eot is not None else 0)
        export_hf_tokenizer(tokenizer, out, model.cfg.block_size)
    elif cfg.format == "safetensors":
        from safetensors.torch import save_file

        weights = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to wte
        save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt", "stage": STAGE})
        (out / "config.json").write_text(json.dumps({"model_config": {**asdict(model.cfg), "attention": "sdpa"},
                                                     "tokenizer": tokenizer.to_json()}), encoding="utf-8")
    else:
        export_onnx(model, out / "model.onnx")
    print(f"exported {source} ({cfg.format}) -> {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return out


if __name__ == "__main__":
    run_main(main)
