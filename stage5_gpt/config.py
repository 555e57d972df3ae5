"""Stage 5 config: the training flags plus the model's shape, with named presets (litgpt style)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.cli import check, model_config
from shared.train import TrainConfig
from stage5_gpt.model import GPTConfig

DATASETS = ("tinyshakespeare", "wikitext2", "gutenberg_children", "the_verdict", "text_file")


@dataclass(frozen=True)
class GPTTrainConfig(GPTConfig, TrainConfig):
    """The training flags (TrainConfig) and the model's shape (GPTConfig, inherited: one definition)."""

    dataset: Literal["tinyshakespeare", "wikitext2", "gutenberg_children", "the_verdict", "text_file"] = field(
        default="tinyshakespeare", metadata={"help": "gutenberg_children: 506 storybooks, ~150 MB (pretraining)"})
    text_file: str = field(default="", metadata={"help": "your own UTF-8 text (with --dataset text_file)"})
    tokenizer: Literal["auto", "char", "gpt2", "bpe"] = field(default="auto", metadata={
        "help": "auto: char for Tiny Shakespeare, a BPE learned on the storybooks for gutenberg_children, "
                "GPT-2's BPE for the rest"})
    vocab_size: int = field(default=0, metadata={
        "help": "tokens in the learned BPE (--tokenizer bpe); 0 = 8192. char and gpt2 fix their own"})
    init_from: str = field(
        default="scratch",
        metadata={"help": "scratch, a stage 5 run folder/checkpoint, or a Hugging Face GPT-2 folder"})
    # Optimisation details of nanoGPT that matter for small GPTs.
    beta2: float = field(default=0.99, metadata={"help": "AdamW beta2 (0.99 suits small batches)"})
    eval_tokens: int = field(default=0, metadata={"help": "val tokens scored at each eval; 0 = the whole split"})
    final_eval_tokens: int = field(default=0, metadata={
        "help": "val and test tokens scored with the best checkpoint at the end; 0 = the whole splits"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_layer >= 1 and self.n_head >= 1 and self.n_embd >= 1, "--n_layer, --n_head, --n_embd must be >= 1")
        check(self.n_embd % self.n_head == 0, f"--n_embd ({self.n_embd}) must be divisible by --n_head ({self.n_head})")
        check(self.position != "rope" or (self.n_embd // self.n_head) % 2 == 0,
              "--position rope needs an even head size (n_embd / n_head)")
        check(self.block_size >= 2, "--block_size must be at least 2")
        check(0 <= self.dropout < 1, "--dropout must be in [0, 1)")
        check(0 < self.beta2 < 1, "--beta2 must be in (0, 1)")
        check(self.eval_tokens >= 0, "--eval_tokens must be >= 0")
        check(self.final_eval_tokens >= 0, "--final_eval_tokens must be >= 0")
        check(self.dataset != "text_file" or bool(self.text_file), "--dataset text_file needs --text_file PATH")
        check(not self.text_file or self.dataset == "text_file", "--text_file needs --dataset text_file")
        check(self.vocab_size == 0 or (self.tokenizer_name == "bpe" and 258 <= self.vocab_size <= 65535),
              "--vocab_size sets the size of a learned BPE: use it with --tokenizer bpe, between 258 and 65535")

    @property
    def tokenizer_name(self) -> str:
        if self.tokenizer != "auto":
            return self.tokenizer
        return {"tinyshakespeare": "char", "gutenberg_children": "bpe"}.get(self.dataset, "gpt2")

    def model_config(self, vocab_size: int) -> GPTConfig:
        return model_config(GPTConfig, self, vocab_size=vocab_size)


_GPT2_TRAINING = dict(gelu="tanh", batch_size=32, grad_accum=16, block_size=1024, lr=6e-4, min_lr_ratio=0.1,
                      warmup_steps=700, max_steps=20000, weight_decay=0.1, beta2=0.95, dropout=0.0, bias=False,
                      compile=True, eval_interval=1000, eval_tokens=1 << 20, log_interval=10, dataset="wikitext2")

# The storybook GPT for stage 6 (and 7): ~30 minutes on 2 cores. bf16 where the CPU has it (--amp auto), the
# written-out attention (faster than SDPA's CPU kernel in bf16), the chunked head and loss, compiled: the
# speed table in the README says what each gives. Context 256, room for an instruction and its answer.
# The final score reads 512k evenly spaced tokens of val and of test (the whole 2.3M would take minutes).
GUTENBERG_CPU = dict(n_layer=4, n_head=4, n_embd=256, block_size=256, batch_size=16, max_steps=5000, lr=1e-3,
                     warmup_steps=200, eval_interval=500, eval_tokens=1 << 17, final_eval_tokens=1 << 19,
                     log_interval=50, attention="manual", lm_loss="chunked", compile=True)

PRESETS: dict[str, dict] = {
    # Seconds on a laptop: tests and notebooks.
    "tiny": dict(preset="tiny", amp="off", n_layer=2, n_head=2, n_embd=32, block_size=32, bias=False, gelu="exact",
                 batch_size=8, max_steps=60, lr=3e-3,
                 warmup_steps=5, eval_interval=30, log_interval=10, weight_decay=0.1, eval_tokens=4096,
                 final_eval_tokens=1 << 12),  # seconds, with a 50k-token vocabulary too
    # nanoGPT's CPU shape from its README: 4 layers, 4 heads, 128 dims, context 64, batch 12, 2000 steps;
    # bf16 where the CPU has it (--amp auto) and the written-out attention (faster than SDPA's CPU kernel
    # in bf16). Twice nanoGPT's learning rate: val 1.80 instead of 1.90 after the same 2000 steps.
    "cpu": dict(preset="cpu", n_layer=4, n_head=4, n_embd=128, block_size=64, bias=False, gelu="exact",
                batch_size=12, max_steps=2000, attention="manual",
                lr=2e-3, min_lr_ratio=0.1, warmup_steps=100, weight_decay=0.1, dropout=0.0, eval_interval=250,
                log_interval=50,
                # GPT-2 BPE: a 50k-row embedding; score 64k val tokens at each eval, the whole split at the end.
                by_dataset={"wikitext2": dict(lr=1e-3, eval_tokens=1 << 16, lm_loss="chunked"),
                            # Pretraining for stage 6 in ~30 minutes: twice as wide, four times the context,
                            # an 8k BPE learned on the books (a 2M-row embedding instead of GPT-2's 6.4M).
                            "gutenberg_children": GUTENBERG_CPU}),
    # nanoGPT's shakespeare-char GPU shape: 6 layers, 6 heads, 384 dims, context 256, batch 64. Half of
    # nanoGPT's 5000 steps: the cosine ends sooner, so val 1.47 comes at step ~1500 instead of 1750, and
    # the best val is 1.458 (3 seeds) against nanoGPT's 1.470. Eager: compiling costs more than it saves here.
    "gpu": dict(preset="gpu", n_layer=6, n_head=6, n_embd=384, block_size=256, bias=False, gelu="exact",
                batch_size=64, max_steps=2500,
                lr=1e-3, min_lr_ratio=0.1, warmup_steps=100, weight_decay=0.1, dropout=0.2, eval_interval=250,
                log_interval=50,
                # 2.4M tokens are 150 steps of 16k: past ~10 epochs it only overfits.
                by_dataset={"wikitext2": dict(max_steps=2000, lr=6e-4),
                            # 36.5M train tokens (8k BPE) are 2,230 steps of 16k: 5,000 steps are ~2.2
                            # epochs, no dropout (not run on a GPU yet).
                            "gutenberg_children": dict(max_steps=5000, dropout=0.0, eval_interval=500,
                                                       eval_tokens=1 << 20)}),
    # GPT-2 small (124M) and medium (350M); for pretrained weights (--init_from) or real GPUs.
    "gpt2": dict(preset="gpt2", n_layer=12, n_head=12, n_embd=768, **_GPT2_TRAINING),
    "gpt2-medium": dict(preset="gpt2-medium", n_layer=24, n_head=16, n_embd=1024,
                        **{**_GPT2_TRAINING, "batch_size": 16, "grad_accum": 32, "lr": 3e-4}),
}
