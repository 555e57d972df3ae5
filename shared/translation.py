"""The translation task stages 3 and 4 share: pairs, tokens, vocabularies, batches, BLEU, config.

    raw sentence --tokenize--> ["A", "man", "'", "s", "hat", "."] --Vocab--> ids (+ <bos>/<eos>)
    model output ids --Vocab--> tokens --detokenize--> "A man's hat." --sacreBLEU vs raw reference

Tokens keep their case (cased BLEU needs it); `detokenize` undoes `tokenize` (a test checks it
scores >= 95 BLEU against the raw references). Two BLEU figures are reported for every run:
sacreBLEU on detokenized text (the comparable one, with its signature) and lowercased BLEU on our
tokens (the convention of the tutorials whose numbers we compare with).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from shared.batching import EpochBatches
from shared.cli import check
from shared.course_data import load_fra_eng, load_multi30k
from shared.data_registry import DataError
from shared.own_data import dataset_slug
from shared.tokenizers import BOS_ID, EOS_ID, Vocab, pad_batch
from shared.train import TrainConfig

SPLITS = ("train", "val", "test")
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_NO_SPACE_BEFORE = set(",.!?;:)]}%")
_NO_SPACE_AFTER = set("([{")
_JOINERS = set("'’-/")  # glue the words on both sides: l'homme, man's, t-shirt, and/or


def tokenize(text: str) -> list[str]:
    """Words and single punctuation marks, case kept: "L'homme, à vélo." -> [L ' homme , à vélo .]."""
    return _TOKEN_RE.findall(text)


def detokenize(tokens: Sequence[str]) -> str:
    """Join tokens back into text: no space before , . ! ? ) and after (; ' - / glue both sides;
    straight double quotes alternate between opening and closing."""
    out: list[str] = []
    glue_next, open_quote = True, False
    for tok in tokens:
        glue = glue_next or tok in _NO_SPACE_BEFORE or tok in _JOINERS
        glue_next = tok in _NO_SPACE_AFTER or tok in _JOINERS
        if tok == '"':
            open_quote = not open_quote
            glue, glue_next = (glue_next, True) if open_quote else (True, False)
        out.append(tok if glue or not out else " " + tok)
    return "".join(out)


# --------------------------------------------------------------------------- data


@dataclass
class ParallelText:
    """Raw sentence pairs of the three splits, source and target side."""

    src: dict[str, list[str]]
    tgt: dict[str, list[str]]


def load_tsv_pairs(path: Path) -> ParallelText:
    """Your own sentence pairs: one `source<TAB>target` per line (UTF-8), split 90% / 5% / 5% by a fixed
    shuffle (seed 1234, whatever --seed says), at least one pair in val and test."""
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file; give a UTF-8 text file of source<TAB>target lines.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; save it as UTF-8 with one source<TAB>target pair per "
                        f"line.") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(f"{path} line {number} is not source<TAB>target; every line needs a tab between the "
                            f"two sentences.")
        pairs.append((fields[0].strip(), fields[1].strip()))
    if len(pairs) < 3:
        raise DataError(f"{path} holds {len(pairs)} pairs; it needs at least 3 (train, val and test), and "
                        f"thousands to learn to translate.")
    random.Random(1234).shuffle(pairs)
    n_hold = max(1, len(pairs) // 20)
    parts = {"test": pairs[:n_hold], "val": pairs[n_hold:2 * n_hold], "train": pairs[2 * n_hold:]}
    return ParallelText({s: [p[0] for p in v] for s, v in parts.items()},
                        {s: [p[1] for p in v] for s, v in parts.items()})


def load_pairs(dataset: str, src: str, tgt: str, max_train_pairs: int = 0, seed: int = 0) -> ParallelText:
    """Multi30k (its own train / val / test_2016_flickr), Tatoeba fra-eng (split 95% / 2.5% / 2.5%
    by a fixed shuffle; only en <-> fr), or your own tsv:PATH (load_tsv_pairs)."""
    if dataset == "multi30k":
        files = {"train": "train", "val": "val", "test": "test_2016_flickr"}
        sides = {lang: {s: load_multi30k(f, lang) for s, f in files.items()} for lang in (src, tgt)}
        for split in SPLITS:
            if len(sides[src][split]) != len(sides[tgt][split]):
                raise DataError(f"Multi30k {split}.{src} and {split}.{tgt} have different line counts; "
                                f"delete them from the data folder to fetch them again.")
        text = ParallelText(sides[src], sides[tgt])
    elif dataset == "fra_eng":
        pairs = load_fra_eng()
        random.Random(1234).shuffle(pairs)
        n_hold = len(pairs) // 40
        parts = {"test": pairs[:n_hold], "val": pairs[n_hold:2 * n_hold], "train": pairs[2 * n_hold:]}
        pick = {"en": 0, "fr": 1}
        text = ParallelText({s: [p[pick[src]] for p in v] for s, v in parts.items()},
                            {s: [p[pick[tgt]] for p in v] for s, v in parts.items()})
    elif dataset.startswith("tsv:"):
        text = load_tsv_pairs(Path(dataset[4:]).expanduser())
    else:
        raise DataError(f"unknown translation data set {dataset!r}; use multi30k, fra_eng or tsv:PATH.")
    if max_train_pairs and max_train_pairs < len(text.src["train"]):
        keep = sorted(random.Random(seed).sample(range(len(text.src["train"])), max_train_pairs))
        text.src["train"] = [text.src["train"][i] for i in keep]
        text.tgt["train"] = [text.tgt["train"][i] for i in keep]
    return text


@dataclass
class TranslationData:
    """Tokenized, numericalized splits. Target ids are <bos> w1 ... wn <eos>; source ids end in <eos>."""

    text: ParallelText
    src_vocab: Vocab
    tgt_vocab: Vocab
    src_ids: dict[str, list[list[int]]]
    tgt_ids: dict[str, list[list[int]]]


def build_data(text: ParallelText, min_freq: int, max_len: int, src_vocab: Vocab | None = None,
               tgt_vocab: Vocab | None = None) -> TranslationData:
    """Vocabularies from train only (rarer tokens become <unk>); sentences cut to max_len tokens."""
    toks = {side: {s: [tokenize(t)[:max_len] for t in getattr(text, side)[s]] for s in SPLITS}
            for side in ("src", "tgt")}
    src_vocab = src_vocab or Vocab.build(toks["src"]["train"], min_freq=min_freq)
    tgt_vocab = tgt_vocab or Vocab.build(toks["tgt"]["train"], min_freq=min_freq)
    src_ids = {s: [src_vocab.encode(t) + [EOS_ID] for t in toks["src"][s]] for s in SPLITS}
    tgt_ids = {s: [[BOS_ID] + tgt_vocab.encode(t) + [EOS_ID] for t in toks["tgt"][s]] for s in SPLITS}
    return TranslationData(text, src_vocab, tgt_vocab, src_ids, tgt_ids)


def pad(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad with <pad> (0): (ids (B, T), lengths (B,))."""
    return pad_batch(seqs), torch.tensor([len(s) for s in seqs])


class PairBatches:
    """Batch i of shuffled training pairs, a pure function of i: (src (B, S), src_len (B,), tgt (B, T))."""

    def __init__(self, data: TranslationData, batch_size: int, seed: int, device: torch.device):
        self.src, self.tgt, self.device = data.src_ids["train"], data.tgt_ids["train"], device
        self.order = EpochBatches(len(self.src), batch_size, seed)
        self.steps_per_epoch = self.order.steps_per_epoch

    def __call__(self, i: int):
        idx = self.order.indices(i).tolist()
        src, src_len = pad([self.src[j] for j in idx])
        tgt, _ = pad([self.tgt[j] for j in idx])
        return src.to(self.device), src_len.to(self.device), tgt.to(self.device)


# --------------------------------------------------------------------------- BLEU


def bleu_scores(hyp_tokens: Sequence[Sequence[str]], refs_raw: Sequence[str]) -> dict:
    """sacreBLEU BLEU and chrF on detokenized hypotheses vs the raw references (cased), their
    signatures, and lowercased BLEU on tokens (hypotheses vs tokenized references)."""
    import sacrebleu

    hyps = [detokenize(t) for t in hyp_tokens]
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    tok_bleu = sacrebleu.metrics.BLEU(tokenize="none", lowercase=True, force=True)
    ref_tok = [" ".join(tokenize(r)) for r in refs_raw]
    b = bleu.corpus_score(hyps, [list(refs_raw)])
    return {
        "bleu": b.score, "chrf": chrf.corpus_score(hyps, [list(refs_raw)]).score,
        "bleu_tok_lower": tok_bleu.corpus_score([" ".join(t) for t in hyp_tokens], [ref_tok]).score,
        "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature()),
        "hypotheses": hyps,
    }


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TranslationConfig(TrainConfig):
    """The task flags both translation stages take."""

    dataset: str = field(default="multi30k", metadata={
        "help": "multi30k, fra_eng, or your own sentence pairs: tsv:PATH (source<TAB>target per line)"})
    src: Literal["en", "de", "fr"] = "en"
    tgt: Literal["en", "de", "fr"] = "fr"
    min_freq: int = field(default=2, metadata={"help": "train tokens seen fewer times become <unk>"})
    max_len: int = field(default=50, metadata={"help": "tokens kept per sentence (longer ones are cut)"})
    max_train_pairs: int = field(default=0, metadata={"help": "use only this many training pairs; 0 = all"})
    label_smoothing: float = field(default=0.0, metadata={"help": "share of the target probability spread"})
    beam_size: int = field(default=5, metadata={"help": "beam width for the final test decode"})
    length_penalty: float = field(default=0.6, metadata={"help": "GNMT alpha: score / ((5 + len) / 6)^alpha"})
    max_decode_len: int = field(default=60, metadata={"help": "longest translation generated"})
    eval_pairs: int = field(default=0, metadata={"help": "val pairs translated at each eval; 0 = all"})
    test_pairs: int = field(default=0, metadata={"help": "test pairs scored after training; 0 = all (tiny: a sample)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.dataset in ("multi30k", "fra_eng") or (self.dataset.startswith("tsv:") and len(self.dataset) > 4),
              f"--dataset {self.dataset!r} is not a translation data set: use multi30k, fra_eng or tsv:PATH")
        check(self.src != self.tgt, "--src and --tgt must differ")
        check(self.dataset != "fra_eng" or {self.src, self.tgt} == {"en", "fr"},
              "--dataset fra_eng has English and French only: use --src en --tgt fr or --src fr --tgt en")
        check(self.min_freq >= 1, "--min_freq must be at least 1")
        check(self.max_len >= 1 and self.max_decode_len >= 1, "--max_len and --max_decode_len must be >= 1")
        check(self.max_train_pairs >= 0, "--max_train_pairs must be >= 0")
        check(0 <= self.label_smoothing < 1, "--label_smoothing must be in [0, 1)")
        check(self.beam_size >= 1, "--beam_size must be at least 1")
        check(self.length_penalty >= 0, "--length_penalty must be >= 0")
        check(self.eval_pairs >= 0 and self.test_pairs >= 0, "--eval_pairs and --test_pairs must be >= 0")

    @property
    def direction(self) -> str:
        return f"{self.src}-{self.tgt}"

    def run_dir(self, stage: str) -> Path:
        if self.out_dir or self.run_name:
            return super().run_dir(stage)
        return Path("runs") / stage / f"{dataset_slug(self.dataset)}-{self.direction}-{self.preset}{self.name_suffix}"
