"""Stage 6 config: what to start from, what to train, and the usual training flags, with presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.classification_data import check_classification_dataset
from shared.cli import check, derived
from shared.own_data import TextColumns, dataset_slug
from shared.train import TrainConfig

# The stage 5 run this stage starts from unless told otherwise: the `cpu` preset pretrained on the
# storybook corpus with its own BPE (`make pretrain`, ~30 minutes on 2 CPU cores).
DEFAULT_PRETRAINED = "runs/stage5_gpt/gutenberg_children-cpu"
PRETRAIN_COMMAND = "python -m stage5_gpt.train --dataset gutenberg_children --preset cpu"
TASKS = ("sms_spam", "sst2")


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig, TextColumns):
    task: str = field(default="sms_spam", metadata={
        "help": "sms_spam: ham or spam (the balanced split of LLMs-from-scratch); sst2: movie-review "
                "sentiment, GLUE's dev set held out; or your own: csv:PATH, json:PATH, parquet:PATH, hf:NAME"})
    dataset: str = derived("sms_spam", "the task's data set (set from --task)")
    init_from: str = field(
        default="pretrained",
        metadata={"help": f"pretrained ({DEFAULT_PRETRAINED}), a stage 5 run folder or checkpoint, "
                          "a Hugging Face GPT-2 folder, or random (same shape, untrained: the ablation)"})
    trainable: Literal["head", "last_block", "last_two_blocks", "all", "lora"] = field(
        default="last_block", metadata={"help": "what is trained; everything else stays frozen"})
    lora_rank: int = field(default=8, metadata={"help": "rank r of the LoRA adapters (--trainable lora)"})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scale alpha (the update is alpha/r * B A)"})
    max_length: int = field(default=0, metadata={"help": "tokens per message; 0 = the longest train message "
                                                         "(cut to the model's context)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout inside the GPT while finetuning"})
    adapt_steps: int = field(default=0, metadata={
        "help": "continued pretraining first: steps of next-token prediction on the task's training texts "
                "(labels unused, every weight trained; 2,048 tokens a step), then the finetuning; 0 = off"})
    adapt_lr: float = field(default=5e-4, metadata={"help": "learning rate of the --adapt_steps phase"})
    random_shape: str = field(default="pretrained", metadata={
        "help": "the shape of --init_from random: pretrained (the pretrained model's shape and tokenizer, "
                "weights drawn afresh: the ablation), or n_layer,n_head,n_embd,block_size with GPT-2's BPE"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", self.task)  # the record's data set: what the report groups by
        super().__post_init__()
        check_classification_dataset(self.task, TASKS, "--task")
        check(self.lora_rank >= 1, "--lora_rank must be at least 1")
        check(self.lora_alpha > 0, "--lora_alpha must be positive")
        check(self.max_length >= 0, "--max_length must be >= 0")
        check(0 <= self.dropout < 1, "--dropout must be in [0, 1)")
        check(self.adapt_steps >= 0, "--adapt_steps must be >= 0")
        check(self.adapt_lr > 0, "--adapt_lr must be positive")
        parts = self.random_shape.split(",")
        check(self.random_shape == "pretrained" or (len(parts) == 4 and all(p.strip().isdigit() and int(p) > 0
                                                                            for p in parts)),
              "--random_shape must be pretrained or four positive integers: n_layer,n_head,n_embd,block_size")

    @property
    def init_name(self) -> str:
        """A short name for where the weights came from: pretrained, random, or the folder's name."""
        if self.init_from in ("pretrained", "random"):
            return self.init_from
        path = Path(self.init_from)
        return path.parent.name if path.suffix == ".pt" else path.name

    def run_dir(self, stage: str) -> Path:
        if self.out_dir or self.run_name:
            return super().run_dir(stage)
        task = "" if self.task == "sms_spam" else f"{dataset_slug(self.task)}-"
        adapted = f"-adapt{self.adapt_steps}" if self.adapt_steps else ""
        name = f"{task}{self.init_name}{adapted}-{self.trainable}-{self.preset}{self.name_suffix}"
        return Path("runs") / stage / name


PRESETS: dict[str, dict] = {
    # Seconds: tests and notebooks (use with a tiny --init_from or random).
    "tiny": dict(preset="tiny", amp="off", max_steps=80, batch_size=8, lr=1e-3, eval_interval=40, log_interval=10,
                 random_shape="2,2,32,32"),
    # LLMs-from-scratch ch. 6: batch 8, AdamW with weight decay 0.1, 5 epochs. Our GPT is ~15x
    # smaller than GPT-2, so it wants a larger learning rate than their 5e-5; the head alone (a
    # linear model on frozen features) wants a larger one still. Training everything (embeddings
    # included) keeps improving to 10 epochs (test 95.3% vs 94.0% at 5, pretrained init).
    "cpu": dict(preset="cpu", epochs=5, batch_size=8, lr=5e-4, weight_decay=0.1, warmup_steps=20,
                eval_interval=0, log_interval=20,
                by_trainable={"head": dict(lr=5e-3), "lora": dict(lr=2e-3), "all": dict(epochs=10)},
                # SST-2 has 64x as many training texts as the SMS split: 600 batches of 32 (19,200
                # phrases, 30% of an epoch; 25 s of training on 2 cores with the last block trained, as the
                # stage README's table records).
                by_task={"sst2": dict(max_steps=600, batch_size=32, warmup_steps=50, eval_interval=200)}),
}
PRESETS["gpu"] = {**PRESETS["cpu"], "preset": "gpu"}
