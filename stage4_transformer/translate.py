"""Translate a sentence: `python -m stage4_transformer.translate "a man is riding a bike ."`

    --beam_size 1                  greedy instead of beam search
    --show_attention attn.png      save which source words each output word attended to
    --checkpoint RUN               a run folder or .pt (default: the latest run)
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.cli import run_main
from shared.translation_run import translate_main
from stage4_transformer.train import STAGE, load_model


def main(argv: Sequence[str] | None = None) -> str:
    return translate_main(STAGE, load_model, argv)


if __name__ == "__main__":
    run_main(main)
