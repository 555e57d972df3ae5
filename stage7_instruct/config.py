"""Stage 7 configs: supervised finetuning (train.py) and preference tuning (dpo.py), with presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.cli import check
from shared.train import TrainConfig

STAGE = "stage7_instruct"
# The stage 5 run this stage starts from unless told otherwise: the storybook GPT (`make pretrain`).
DEFAULT_PRETRAINED = "runs/stage5_gpt/gutenberg_children-cpu"
PRETRAIN_COMMAND = "python -m stage5_gpt.train --dataset gutenberg_children --preset cpu"
DEFAULT_SFT = "runs/stage7_instruct/sft-mix-cpu"


@dataclass(frozen=True)
class InstructConfig(TrainConfig):
    """What both methods share: where the weights come from and how long a reply may be."""

    init_from: str = field(default="pretrained", metadata={
        "help": f"pretrained ({DEFAULT_PRETRAINED}), a stage 5 or stage 7 run folder or checkpoint, or a "
                "Hugging Face GPT-2 folder"})
    dropout: float = field(default=0.0, metadata={"help": "dropout inside the GPT while training"})
    eval_examples: int = field(default=0, metadata={"help": "validation examples scored at each eval; 0 = all"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 <= self.dropout < 1, "--dropout must be in [0, 1)")
        check(self.eval_examples >= 0, "--eval_examples must be >= 0")

    @property
    def init_name(self) -> str:
        if self.init_from == "pretrained":
            return ""
        path = Path(self.init_from)
        return "-" + (path.parent.name if path.suffix == ".pt" else path.name)


@dataclass(frozen=True)
class SFTConfig(InstructConfig):
    data: Literal["mix", "storybook", "ch07"] = field(default="mix", metadata={
        "help": "mix: both sets; storybook: our set with checkable requirements; ch07: LLMs-from-scratch's 1,100"})
    mask_prompt: bool = field(default=True, metadata={
        "help": "loss on the response and <|end|> only (--no-mask_prompt: on the prompt too)"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", f"instruct-{self.data}")
        super().__post_init__()

    def run_dir(self, stage: str) -> Path:
        if self.out_dir or self.run_name:
            return super().run_dir(stage)
        unmasked = "" if self.mask_prompt else "-nomask"
        return Path("runs") / stage / f"sft-{self.data}{unmasked}{self.init_name}-{self.preset}{self.name_suffix}"


@dataclass(frozen=True)
class DPOConfig(InstructConfig):
    init_from: str = field(default=DEFAULT_SFT, metadata={
        "help": "the SFT model (a stage 7 run folder or checkpoint): the policy starts as it and the frozen "
                "reference is it"})
    pairs: Literal["both", "ch07", "storybook"] = field(default="both", metadata={
        "help": "ch07: the book's preference pairs; storybook: pairs sampled from the SFT model, the reply "
                "meeting more requirements preferred; both"})
    preference_file: str = field(default="", metadata={
        "help": "your own preference pairs: a JSON list with instruction, input, output, chosen, rejected"})
    beta: float = field(default=0.1, metadata={"help": "DPO's beta: how far the policy may move from the reference"})
    story_prompts: int = field(default=600, metadata={"help": "storybook train prompts sampled for pairs"})
    samples_per_prompt: int = field(default=4, metadata={
        "help": "replies sampled per storybook prompt; the best and the worst by requirements met make a pair"})
    max_new_tokens: int = field(default=160, metadata={"help": "longest sampled reply"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the storybook replies"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", f"preference-{self.pairs}")
        super().__post_init__()
        check(self.beta > 0, "--beta must be positive")
        check(self.story_prompts >= 0, "--story_prompts must be >= 0")
        check(self.samples_per_prompt >= 2, "--samples_per_prompt must be at least 2 (a pair needs two replies)")
        check(self.max_new_tokens >= 1, "--max_new_tokens must be at least 1")
        check(self.temperature > 0, "--temperature must be positive")

    def run_dir(self, stage: str) -> Path:
        if self.out_dir or self.run_name:
            return super().run_dir(stage)
        start = "" if self.init_from == DEFAULT_SFT else self.init_name
        return Path("runs") / stage / f"dpo-{self.pairs}{start}-{self.preset}{self.name_suffix}"


SFT_PRESETS: dict[str, dict] = {
    # Seconds: tests (with a tiny --init_from the test builds).
    "tiny": dict(preset="tiny", amp="off", max_steps=30, batch_size=8, lr=1e-3, eval_interval=15, log_interval=5,
                 eval_examples=32),
    # ~14.5 minutes on 2 cores (805.7 s of training, 0.45 s a step, measured): 1,800 steps of 16
    # conversations, about one epoch of the mix, every weight trained, bf16 where the CPU has it.
    "cpu": dict(preset="cpu", max_steps=1800, batch_size=16, lr=5e-4, min_lr_ratio=0.1, warmup_steps=100,
                weight_decay=0.1, eval_interval=300, log_interval=50, eval_examples=512),
}
SFT_PRESETS["gpu"] = {**SFT_PRESETS["cpu"], "preset": "gpu", "max_steps": 5000, "batch_size": 32}

DPO_PRESETS: dict[str, dict] = {
    "tiny": dict(preset="tiny", amp="off", max_steps=20, batch_size=4, lr=1e-4, eval_interval=10, log_interval=5,
                 story_prompts=4, samples_per_prompt=2, max_new_tokens=16, eval_examples=16),
    # One epoch over the pairs (--epochs 1), a small constant learning rate after warmup, as in the paper.
    "cpu": dict(preset="cpu", epochs=1, batch_size=8, lr=1e-5, lr_schedule="constant", warmup_steps=20,
                eval_interval=50, log_interval=10),
}
DPO_PRESETS["gpu"] = {**DPO_PRESETS["cpu"], "preset": "gpu"}
