"""Bytes per token of our BPE (2k / 4k / 8k / 16k tokens) against GPT-2's: `python bench/bpe_compression.py`.

Our BPE is learned once, on the storybooks' train split, up to 16,384 tokens. BPE is greedy: the
first k merges of a 16k training are exactly what a training to 256 + k + 1 tokens learns (tested in
tests/test_bpe.py), so the smaller vocabularies are prefixes of that one. Each tokenizer then encodes
held-out text of three corpora: the storybooks' val + test books, WikiText-2's test split and the
last 10% of Tiny Shakespeare (stage 5's val split). More bytes per token = shorter sequences = more
text in the same context and the same compute; the table shows what a vocabulary sized for this
corpus buys against one learned on 40 GB of web text (GPT-2, 50,257 tokens).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.course_data import split_train_val_text  # noqa: E402
from shared.data_registry import read_text  # noqa: E402
from stage5_gpt.bpe import BPE, gpt2_tokenizer, train_bpe_fast  # noqa: E402
from stage5_gpt.gutenberg import load_splits  # noqa: E402

SIZES = (2048, 4096, 8192, 16384)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "bpe_compression.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    books = load_splits()
    texts = {
        "storybooks val + test": "\n\n".join(books["val"] + books["test"]),
        "WikiText-2 test": read_text("wikitext2", "test"),
        "Tiny Shakespeare val": split_train_val_text(read_text("tinyshakespeare"))[1],
    }
    print(f"learning {SIZES[-1]:,} tokens on {len(books['train'])} train books "
          f"({sum(map(len, books['train'])):,} characters) ...", file=sys.stderr, flush=True)
    merges = train_bpe_fast(books["train"], SIZES[-1])
    learned = time.perf_counter() - started
    tokenizers = {f"ours, {size:,}": BPE(merges[: size - 257]).encode for size in SIZES}
    gpt2 = gpt2_tokenizer()
    tokenizers["GPT-2, 50,257"] = gpt2.encode_ordinary
    head = ["tokenizer", *texts]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, encode in tokenizers.items():
        cells = [f"{len(t.encode('utf-8')) / len(encode(t)):.2f}" for t in texts.values()]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    sizes = ", ".join(f"{name} {len(t.encode('utf-8')) / 1e6:.2f} MB" for name, t in texts.items())
    report = (f"Bytes per token (UTF-8 bytes of held-out text / tokens; higher is better). Held-out text: {sizes}.\n"
              f"Measured on {platform.machine()} CPU, {__import__('os').cpu_count()} cores by "
              f"`python bench/bpe_compression.py` (learning the 16k BPE: {learned:.0f} s).\n\n"
              + "\n".join(lines) + "\n")
    print(report)
    Path(args.out).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
