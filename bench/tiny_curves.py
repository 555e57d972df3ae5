"""The loss curve of every train command on its tiny preset, seed 1337: `python bench/tiny_curves.py OUT.json`.

Run from a checkout's root (`cd OLD && PYTHONPATH=. python /path/to/bench/tiny_curves.py old.json` for
another version of the code): tests/test_same_curves.py trains the same commands and compares their
curves with the ones stored in tests/data/tiny_curves.json, written by this script from the code as of
commit 9a6ef4e, so a refactor that changes what a run computes fails a test.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from pathlib import Path

# (train module, flags after --preset tiny): every entry point, with a log line every step or few.
COMMANDS = [
    ("stage1_mlp.train", ["--dataset", "trec", "--max_steps", "60", "--log_interval", "5"]),
    ("stage2_rnn_lstm.train", ["--log_interval", "5"]),
    ("stage2_rnn_lstm.classify_train", ["--dataset", "trec", "--log_interval", "5"]),
    ("stage3_attention_seq2seq.train", ["--max_train_pairs", "300", "--max_steps", "16", "--eval_interval", "8",
                                        "--log_interval", "2", "--test_pairs", "20"]),
    ("stage4_transformer.train", ["--max_train_pairs", "300", "--max_steps", "16", "--eval_interval", "8",
                                  "--log_interval", "2", "--test_pairs", "20"]),
    ("stage4_transformer.classify_train", ["--dataset", "trec", "--log_interval", "5"]),
    ("stage5_gpt.train", ["--log_interval", "5"]),
    ("stage6_finetune_cls.train", ["--init_from", "random", "--max_steps", "20", "--eval_interval", "10",
                                   "--log_interval", "2"]),
]
# What a curve is compared on: the training loss at each logged step and the validation numbers.
KEYS = ("step", "train_loss", "val_loss", "val_accuracy", "val_bleu", "val_perplexity")


def curve(module: str, flags: list[str], folder: Path) -> list[dict[str, float]]:
    from shared.records import read_history

    out = folder / module.replace(".", "_")
    importlib.import_module(module).main(["--preset", "tiny", *flags, "--out_dir", str(out)])
    return [{k: row[k] for k in KEYS if k in row} for row in read_history(out / "history.csv")]


def main(path: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        curves = {f"{module} {' '.join(flags)}": curve(module, flags, Path(folder)) for module, flags in COMMANDS}
    Path(path).write_text(json.dumps(curves, indent=1) + "\n", encoding="utf-8")
    print(f"{len(curves)} curves -> {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/tiny_curves.py OUT.json")
    sys.path.insert(0, ".")
    main(sys.argv[1])
