"""Talk to an instruction-tuned GPT in the terminal: `python -m stage7_instruct.chat`.

    python -m stage7_instruct.chat                                   # the latest stage 7 run
    python -m stage7_instruct.chat --checkpoint runs/stage7_instruct/dpo-both-cpu --temperature 0.7
    python -m stage7_instruct.chat --message "Write a short story passage with dialogue."   # one exchange

The conversation is kept as tokens (the template's ids, never re-encoded text); when the next reply
would not fit the context, the oldest turns are dropped. Replies stream as they are sampled (KV cache),
whole characters at a time. /clear starts over, /quit (or Ctrl-D, or Ctrl-C) leaves.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from shared.checkpoint import latest_run
from shared.cli import UserError, check, parse_config, run_main
from shared.devices import resolve_device
from shared.sampling import check_sampling
from stage7_instruct.config import STAGE
from stage7_instruct.generation import Sampling, reply_tokens, stream_text
from stage7_instruct.model import ChatTokenizer, render_chat
from stage7_instruct.train import load_chat_model


@dataclass(frozen=True)
class ChatConfig:
    checkpoint: str = field(default="", metadata={"help": "a stage 7 run folder or .pt file; default: the latest"})
    message: str = field(default="", metadata={"help": "send this one message, print the reply, and exit"})
    max_new_tokens: int = field(default=160, metadata={"help": "longest reply (and the room kept for it)"})
    temperature: float = field(default=0.7, metadata={"help": "0 = greedy; < 1 sharper, > 1 more random"})
    top_k: int = field(default=40, metadata={"help": "sample among the k most likely tokens; 0 = all"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus: top tokens holding p of the mass; 1 = off"})
    seed: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        check(self.max_new_tokens >= 1, "--max_new_tokens must be at least 1")
        check_sampling(self.temperature, self.top_k, self.top_p)


class Conversation:
    """The turns so far as (role, text), rendered to ids on demand; the oldest exchanges go first when
    a prompt plus the reply's room would not fit the context."""

    def __init__(self, model, tokenizer: ChatTokenizer, sampling: Sampling, generator: torch.Generator | None = None):
        self.model, self.tokenizer, self.sampling, self.generator = model, tokenizer, sampling, generator
        self.turns: list[tuple[str, str]] = []
        self.room = min(sampling.max_new_tokens, model.cfg.block_size // 2)

    def prompt_ids(self, message: str) -> list[int]:
        turns = self.turns + [("user", message)]
        while True:
            ids, _ = render_chat(turns, self.tokenizer)
            if len(ids) + self.room <= self.model.cfg.block_size:
                self.turns = turns[:-1]
                return ids
            if len(turns) <= 1:
                raise UserError(f"that message is {len(ids)} tokens; with room for a reply this model's context "
                                f"({self.model.cfg.block_size} tokens) holds at most "
                                f"{self.model.cfg.block_size - self.room - 2}: send a shorter one.")
            turns = turns[2:]  # drop the oldest exchange (a user turn and its reply)

    def send(self, message: str) -> Iterator[str]:
        """Stream the reply to `message` as text; the exchange joins the conversation when it ends."""
        message = message.strip()
        if not message:
            raise UserError("the message is empty; type something (or /quit).")
        ids = self.prompt_ids(message)
        pieces: list[str] = []
        tokens = reply_tokens(self.model, ids, self.tokenizer, Sampling(self.room, self.sampling.temperature,
                                                                         self.sampling.top_k, self.sampling.top_p),
                              self.generator)
        for text in stream_text(tokens, self.tokenizer):
            pieces.append(text)
            yield text
        self.turns += [("user", message), ("assistant", "".join(pieces).strip())]

    def clear(self) -> None:
        self.turns = []


def load_conversation(cfg: ChatConfig) -> Conversation:
    device = resolve_device(cfg.device)
    model, tokenizer, kind = load_chat_model(cfg.checkpoint or latest_run(STAGE), device, stage7_only=False)
    if kind != "stage7":
        print(f"note: {cfg.checkpoint} is a base model, not instruction-tuned: expect it to ramble.", file=sys.stderr)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    return Conversation(model.eval(), tokenizer, Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p),
                        generator)


def answer(conversation: Conversation, message: str, out=None) -> str:
    out = out or sys.stdout  # looked up per call, so a redirected stdout is honoured
    pieces = []
    with torch.no_grad():
        for text in conversation.send(message):
            pieces.append(text)
            out.write(text)
            out.flush()
    out.write("\n")
    return "".join(pieces)


def main(argv: Sequence[str] | None = None) -> list[str]:
    cfg = parse_config(ChatConfig, {}, argv, prog=f"python -m {STAGE}.chat",
                       description="Talk to an instruction-tuned GPT (stage 7) in the terminal.")
    args = list(sys.argv[1:] if argv is None else argv)
    if not cfg.message.strip() and any(a == "--message" or a.startswith("--message=") for a in args):
        raise UserError("--message is empty: give it some text, or leave --message out to talk to the model.")
    conversation = load_conversation(cfg)
    if cfg.message:
        return [answer(conversation, cfg.message)]
    print("Talk to the model: type a message and press Enter. /clear starts over, /quit leaves.")
    replies = []
    while True:
        try:
            message = input("you> ")
        except (EOFError, KeyboardInterrupt):  # Ctrl-D, Ctrl-C: leave quietly
            print()
            return replies
        except UnicodeDecodeError:
            print("that message is not valid UTF-8 text; set your terminal to UTF-8 and type it again.")
            continue
        if message.strip() == "/quit":
            return replies
        if message.strip() == "/clear":
            conversation.clear()
            print("(conversation cleared)")
            continue
        print("model> ", end="", flush=True)
        try:
            replies.append(answer(conversation, message))
        except UserError as err:
            print(f"\n{err}")
        except KeyboardInterrupt:  # Ctrl-C during a reply: stop it, keep the conversation going
            print("\n(reply stopped)")


if __name__ == "__main__":
    run_main(main)
