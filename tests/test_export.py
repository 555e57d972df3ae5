"""`python -m stage5_gpt.export`: what leaves the course computes what the model computes.

For each of stage 5's tokenizers (our BPE, characters, GPT-2's BPE) a tiny trained GPT goes out as a
Hugging Face folder and comes back through `transformers` with the same logits and the same greedy
continuation, and through `AutoTokenizer` with the same token ids; as ONNX it runs in onnxruntime
with the same logits at two sequence lengths; a LLaMA-style block is refused by the GPT-2 format in
one sentence and exports as safetensors.
"""

import json

import pytest
import torch

from shared.cli import UserError
from stage5_gpt import export
from stage5_gpt import train as stage5_train

TEXT = "Once upon a time there was a little dog who liked to run in the garden."


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    story = root / "story.txt"
    story.write_text("Once upon a time there was a tiny model that learned to write. " * 200, encoding="utf-8")
    flags = {
        "bpe": ["--dataset", "the_verdict", "--tokenizer", "bpe", "--vocab_size", "400"],
        "char": [],  # Tiny Shakespeare's characters
        "gpt2": ["--dataset", "text_file", "--text_file", str(story)],
        "rope": ["--dataset", "the_verdict", "--tokenizer", "char", "--position", "rope", "--norm", "rmsnorm"],
    }
    for name, extra in flags.items():
        stage5_train.main(["--preset", "tiny", "--max_steps", "4", "--eval_interval", "4", *extra,
                           "--out_dir", str(root / name)])  # a few steps: export must match any weights
    return root


def greedy(step, ids: torch.Tensor, n: int) -> list[int]:
    for _ in range(n):
        ids = torch.cat([ids, step(ids)[:, -1:].argmax(-1)], dim=1)
    return ids[0].tolist()


@pytest.mark.parametrize("kind", ["bpe", "char", "gpt2"])
def test_hugging_face_folder_loads_with_transformers_and_computes_the_same(runs, kind, tmp_path):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    folder = export.main(["--checkpoint", str(runs / kind), "--format", "hf", "--out", str(tmp_path / "hf")])
    ours, tokenizer, _ = stage5_train.load_model(runs / kind)
    theirs = GPT2LMHeadModel.from_pretrained(folder).eval()
    their_tokenizer = AutoTokenizer.from_pretrained(folder)
    text = TEXT if kind != "char" else "ROMEO:\nBut soft, what light?"
    ids = tokenizer.encode(text)
    assert their_tokenizer(text)["input_ids"] == ids
    assert their_tokenizer.decode(ids) == text
    x = torch.tensor([ids[:ours.cfg.block_size - 8]])  # room for 8 more tokens in the tiny context
    with torch.no_grad():
        expected = ours.eval()(x)[0][..., :theirs.config.vocab_size]
        assert torch.allclose(theirs(x).logits, expected, atol=1e-4)
        assert greedy(lambda i: theirs(i).logits, x, 8) == greedy(lambda i: ours(i)[0][..., :theirs.config.vocab_size],
                                                                   x, 8)
    if kind == "gpt2":
        assert theirs.config.vocab_size == 50257  # the padded rows are left behind


def test_onnx_runs_in_onnxruntime_with_the_same_logits(runs, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    folder = export.main(["--checkpoint", str(runs / "bpe"), "--format", "onnx", "--out", str(tmp_path / "onnx")])
    session = ort.InferenceSession(str(folder / "model.onnx"))
    ours, _, _ = stage5_train.load_model(runs / "bpe")
    for length in (5, ours.cfg.block_size):
        x = torch.randint(0, ours.cfg.vocab_size, (2, length))
        got = torch.from_numpy(session.run(None, {"input_ids": x.numpy()})[0])
        with torch.no_grad():
            assert torch.allclose(got, ours.eval()(x)[0], atol=1e-4)


def test_llama_block_is_refused_by_the_gpt2_format_and_exports_as_safetensors(runs, tmp_path):
    from safetensors.torch import load_file

    with pytest.raises(UserError, match="--format safetensors or --format onnx"):
        export.main(["--checkpoint", str(runs / "rope"), "--format", "hf", "--out", str(tmp_path / "hf")])
    folder = export.main(["--checkpoint", str(runs / "rope"), "--format", "safetensors", "--out", str(tmp_path / "st")])
    saved = json.loads((folder / "config.json").read_text())
    assert saved["model_config"]["position"] == "rope" and saved["tokenizer"]["kind"] == "char"
    ours, _, _ = stage5_train.load_model(runs / "rope")
    weights = load_file(str(folder / "model.safetensors"))
    assert all(torch.equal(weights[k], v) for k, v in ours.state_dict().items() if k != "lm_head.weight")


def test_missing_out_is_one_sentence():
    with pytest.raises(SystemExit) as stop:
        export.main(["--format", "onnx"])
    assert stop.value.code == 2
