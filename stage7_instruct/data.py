"""Stage 7 data: the instruction sets, the preference pairs, and batches of rendered conversations.

    ch07        LLMs-from-scratch chapter 7's 1,100 Alpaca-style entries, split as the book splits them:
                the first 85% train (935), the next 10% test (110), the last 5% val (55)
    storybook   our own set from the storybook corpus's train books, with checkable requirements
                (storybook.py)
    mix         both training sets together (the default: the model learns to follow either kind)

Every example is rendered with render_chat; one that does not fit the model's context is dropped,
never cut (a cut response would teach the model to stop mid-sentence without its <|end|>), and the
count of dropped examples is printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from shared.cli import UserError
from shared.data_registry import data_file
from stage7_instruct.model import ChatTokenizer
from stage7_instruct.storybook import StoryExample, load_storybook_set

CH07_FIELDS = ("instruction", "input", "output")
PREFERENCE_FIELDS = CH07_FIELDS + ("chosen", "rejected")


@dataclass(frozen=True)
class Instruction:
    """One prompt and its reference response; storybook prompts carry their requirements."""

    prompt: str
    response: str
    source: str  # ch07 | storybook
    story: StoryExample | None = None


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str
    source: str


def ch07_prompt(entry: dict) -> str:
    """The instruction, and its input (if any) after a blank line."""
    return entry["instruction"] + (f"\n\n{entry['input']}" if entry.get("input") else "")


def read_entries(path: str | Path, fields: Sequence[str]) -> list[dict]:
    """A JSON list of objects, each with `fields` as strings; anything else is one sentence."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path} as JSON ({type(err).__name__}: {err}); give a JSON list of "
                        f"objects with the fields {', '.join(fields)}.") from None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path} must hold a non-empty JSON list of objects with the fields {', '.join(fields)}.")
    for i, entry in enumerate(entries):
        missing = [f for f in fields if not isinstance(entry, dict) or not isinstance(entry.get(f), str)]
        if missing:
            raise UserError(f"{path}: entry {i} has no text field {missing[0]!r}; every entry needs "
                            f"{', '.join(fields)} (input may be empty).")
    return entries


def split_ch07(entries: list) -> dict[str, list]:
    """LLMs-from-scratch's split, in file order: 85% train, then 10% test, then the rest val."""
    n_train, n_test = int(len(entries) * 0.85), int(len(entries) * 0.1)
    return {"train": entries[:n_train], "val": entries[n_train + n_test:], "test": entries[n_train:n_train + n_test]}


def load_instructions(name: str, preference_file: str = "") -> dict[str, list[Instruction]]:
    """train / val / test instructions of `name`: ch07, storybook or mix (both)."""
    sets: dict[str, list[Instruction]] = {"train": [], "val": [], "test": []}
    if name in ("ch07", "mix"):
        entries = read_entries(data_file("instruct", "instructions"), CH07_FIELDS)
        for split, items in split_ch07(entries).items():
            sets[split] += [Instruction(ch07_prompt(e), e["output"], "ch07") for e in items]
    if name in ("storybook", "mix"):
        for split, items in load_storybook_set().items():
            sets[split] += [Instruction(e.instruction, e.response, "storybook", e) for e in items]
    return sets


def load_ch07_pairs(path: str = "") -> dict[str, list[Pair]]:
    """The ch07 preference pairs, split as the instructions are; pairs whose two responses are the same
    text teach nothing (and give a loss of exactly ln 2 forever) and are dropped."""
    entries = read_entries(path or data_file("instruct", "preferences"), PREFERENCE_FIELDS)
    return {split: [Pair(ch07_prompt(e), e["chosen"], e["rejected"], "ch07") for e in items
                    if e["chosen"].strip() != e["rejected"].strip()]
            for split, items in split_ch07(entries).items()}


@dataclass
class Encoded:
    """Rendered conversations: ids and loss masks, one list each per example."""

    ids: list[list[int]]
    masks: list[list[bool]]
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.ids)


def encode_instructions(items: Sequence[Instruction], tokenizer: ChatTokenizer, context: int, mask_prompt: bool,
                        render: Callable) -> Encoded:
    out = Encoded([], [])
    for item in items:
        ids, mask = render([("user", item.prompt), ("assistant", item.response)], tokenizer, mask_prompt)
        if len(ids) > context:
            out.dropped += 1
            continue
        out.ids.append(ids)
        out.masks.append(mask)
    return out


def fits(prompt_ids: Sequence[int], reply_budget: int, context: int) -> bool:
    return len(prompt_ids) + reply_budget <= context


def pad_batch(rows: Sequence[Sequence[int]], masks: Sequence[Sequence[bool]], pad_id: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row: ids (B, T) and mask (B, T), the padding masked out. Causal attention
    means padding after a row's end cannot change anything before it."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks)):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(m)] = torch.tensor(m)
    return ids.to(device), mask.to(device)


class ShuffledExamples:
    """Batch i of a seeded shuffle, epoch after epoch: a pure function of i, so a resumed run sees the
    same batches. batch_at(i) -> (ids (B, T), mask (B, T))."""

    def __init__(self, data: Encoded, batch_size: int, seed: int, pad_id: int, device: torch.device):
        if len(data) == 0:
            raise UserError("no training example fits the model's context; use a model with a longer context.")
        self.data, self.batch_size, self.seed, self.pad_id, self.device = data, batch_size, seed, pad_id, device
        self.steps_per_epoch = max(1, len(data) // batch_size)

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, within = divmod(i, self.steps_per_epoch)
        order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(self.seed + epoch))
        picked = order[within * self.batch_size:(within + 1) * self.batch_size].tolist()
        return pad_batch([self.data.ids[j] for j in picked], [self.data.masks[j] for j in picked], self.pad_id,
                         self.device)
