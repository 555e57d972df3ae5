"""GPT-2 weights in the Hugging Face format: load them into our GPT, and export ours so `transformers` loads them.

Our parameter names are GPT-2's, so loading is a copy. One difference: Hugging Face stores the four
projection matrices (c_attn, c_proj, c_fc, mlp.c_proj) as `Conv1D` weights of shape (in, out),
while `nn.Linear` keeps (out, in); those are transposed on the way in and out.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from shared.cli import UserError
from stage5_gpt.model import GPT, GPTConfig, Parts

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def is_hf_folder(path: str | Path) -> bool:
    path = Path(path)
    return (path / "config.json").is_file() and any(
        (path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    try:
        if (folder / "model.safetensors").is_file():
            from safetensors.torch import load_file

            return load_file(str(folder / "model.safetensors"))
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"cannot read the weights in {folder} ({type(err).__name__}: {err}); "
                        f"download the model folder again.") from None


def load_hf_gpt2(folder: str | Path, dropout: float = 0.0, attention: str = "sdpa", parts: Parts | None = None) -> GPT:
    """A GPT with the weights of a Hugging Face GPT-2 folder (config.json + model.safetensors/pytorch_model.bin),
    built with `parts` (None: the reference)."""
    folder = Path(folder)
    if not is_hf_folder(folder):
        raise UserError(f"{folder} is not a Hugging Face GPT-2 folder (config.json plus model.safetensors or "
                        f"pytorch_model.bin); point --init_from at one.")
    hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    gelu_forms = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "exact"}
    gelu = gelu_forms.get(hf.get("activation_function", "gelu_new"))
    if hf.get("model_type", "gpt2") != "gpt2" or gelu is None:
        raise UserError(f"{folder} holds a {hf.get('model_type')} model with {hf.get('activation_function')}; "
                        f"only GPT-2 checkpoints load here.")
    cfg = GPTConfig(vocab_size=hf["vocab_size"], block_size=hf["n_positions"], n_layer=hf["n_layer"],
                    n_head=hf["n_head"], n_embd=hf["n_embd"], dropout=dropout, bias=True, attention=attention,
                    gelu=gelu)
    model = GPT(cfg, parts)
    ours = model.state_dict()
    theirs = {}
    for key, tensor in _read_weights(folder).items():
        key = key if key.startswith(("transformer.", "lm_head.")) else "transformer." + key
        if key.endswith((".attn.bias", ".attn.masked_bias")):  # old files store the causal mask as a buffer
            continue
        theirs[key] = tensor.t() if key.endswith(_CONV1D) else tensor
    theirs.setdefault("lm_head.weight", theirs.get("transformer.wte.weight"))
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    if missing or unexpected:
        raise UserError(f"{folder} does not match GPT-2's layout (missing {missing[:3]}, unexpected "
                        f"{unexpected[:3]}); is it a GPT2LMHeadModel checkpoint?")
    for key, tensor in theirs.items():
        if tensor.shape != ours[key].shape:
            raise UserError(f"{folder}: {key} has shape {tuple(tensor.shape)}, its config.json implies "
                            f"{tuple(ours[key].shape)}; the folder is inconsistent.")
    model.load_state_dict(theirs)
    return model


def export_hf_gpt2(model: GPT, folder: str | Path, vocab_size: int | None = None, eot_id: int = 50256) -> Path:
    """Write config.json + model.safetensors that `GPT2LMHeadModel.from_pretrained(folder)` loads.

    Only the GPT-2 architecture exports (learned positions, LayerNorm, GELU). A model trained without
    biases exports zeros for them, which computes the same function. `vocab_size` crops padded rows.
    """
    from safetensors.torch import save_file

    cfg = model.cfg
    if (cfg.position, cfg.norm, cfg.mlp) != ("learned", "layernorm", "gelu"):
        raise UserError("only the GPT-2 architecture exports to the Hugging Face GPT-2 format "
                        "(--position learned --norm layernorm --mlp gelu).")
    vocab_size = vocab_size or cfg.vocab_size
    tensors = {}
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight":  # tied to wte: transformers re-ties it on load
            continue
        if key == "transformer.wte.weight":
            tensor = tensor[:vocab_size]
        tensors[key] = (tensor.t() if key.endswith(_CONV1D) else tensor).detach().cpu().float().contiguous().clone()
    if not cfg.bias:  # GPT-2 has biases everywhere; zeros are exactly "no bias"
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.LayerNorm)) and module.bias is None \
                    and name != "lm_head":
                rows = module.weight.shape[0] if isinstance(module, torch.nn.Linear) else module.weight.shape[-1]
                tensors[f"{name}.bias"] = torch.zeros(rows)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": vocab_size,
        "n_positions": cfg.block_size, "n_ctx": cfg.block_size, "n_embd": cfg.n_embd, "n_layer": cfg.n_layer,
        "n_head": cfg.n_head, "n_inner": None,
        "activation_function": "gelu_new" if cfg.gelu == "tanh" else "gelu", "layer_norm_epsilon": 1e-5,
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
        "tie_word_embeddings": True, "bos_token_id": eot_id, "eos_token_id": eot_id,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def export_hf_tokenizer(tokenizer, folder: str | Path, context: int) -> Path:
    """The tokenizer files `AutoTokenizer.from_pretrained(folder)` reads, for any of stage 5's tokenizers.

    GPT-2's BPE and ours are byte-level BPEs with GPT-2's pre-split, so both are written as GPT-2
    tokenizers: vocab.json (token string -> id, bytes shown through bytes_to_unicode) and merges.txt
    (the merges, earliest first). Characters become a `tokenizers` word-level model over single
    characters, in tokenizer.json.
    """
    from shared.tokenizers import UNK
    from stage5_gpt.bpe import EOT, bytes_to_unicode

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"model_max_length": context, "clean_up_tokenization_spaces": False}
    if tokenizer.kind == "gpt2":
        from shared.data_registry import data_file

        (folder / "vocab.json").write_bytes(data_file("gpt2_bpe", "encoder_json").read_bytes())
        (folder / "merges.txt").write_bytes(data_file("gpt2_bpe", "vocab_bpe").read_bytes())
        settings.update(tokenizer_class="GPT2Tokenizer", bos_token=EOT, eos_token=EOT, unk_token=EOT)
    elif tokenizer.kind == "bpe":
        shown = bytes_to_unicode()
        text = ["".join(shown[b] for b in token) for token in tokenizer.bpe.vocab]  # id -> printable string
        vocab = {s: i for i, s in enumerate(text)} | {EOT: tokenizer.bpe.eot_id}
        merges = [f"{text[a]} {text[b]}" for a, b in tokenizer.bpe.merges]
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n", encoding="utf-8")
        settings.update(tokenizer_class="GPT2Tokenizer", bos_token=EOT, eos_token=EOT, unk_token=EOT)
    else:
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

        chars = Tokenizer(models.WordLevel(vocab=dict(tokenizer.vocab.stoi), unk_token=UNK))
        chars.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character
        chars.decoder = decoders.Fuse()  # join them back without spaces
        chars.save(str(folder / "tokenizer.json"))
        settings.update(tokenizer_class="PreTrainedTokenizerFast", unk_token=UNK)
    (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return folder
