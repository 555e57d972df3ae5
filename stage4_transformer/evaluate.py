"""Score a trained model on the whole test set: `python -m stage4_transformer.evaluate [--checkpoint RUN]`.

sacreBLEU (cased, detokenized, against the raw references) and chrF, greedy and beam search, with the
sacreBLEU signature; lowercased tokenized BLEU beside them. The hypotheses go to test.greedy.txt and
test.beam<K>.txt in the run folder, the scores to eval-test.json.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.cli import run_main
from shared.translation_run import evaluate_main
from stage4_transformer.train import STAGE, load_model


def main(argv: Sequence[str] | None = None) -> dict:
    return evaluate_main(STAGE, load_model, argv)


if __name__ == "__main__":
    run_main(main)
