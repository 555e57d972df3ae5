"""Sample text from a trained recurrent language model.

    python -m stage2_rnn_lstm.generate --checkpoint runs/stage2_rnn_lstm/tinyshakespeare-lstm-cpu \\
        --prompt "ROMEO:" --temperature 0.8 --top_k 40 --top_p 0.95 --max_new_tokens 500 --seed 1
    python -m stage2_rnn_lstm.generate --interactive          # a prompt loop; empty line or Ctrl-D quits

Characters the model never saw are an error; at word level, unknown words are read as <unk>.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.checkpoint import latest_run
from shared.cli import parse_config, run_main
from shared.devices import resolve_device
from shared.sampling import GenerateConfig, print_samples, run_prompts
from shared.tokenizers import EOS, UNK_ID, word_tokenize
from stage2_rnn_lstm.train import STAGE, load_model


def encode_prompt(vocab, prompt: str) -> list[int]:
    if vocab.level == "char":
        return vocab.encode(list(prompt or "\n"), strict=True)
    words = word_tokenize(prompt, lower=False) if prompt else [EOS]
    ids = vocab.encode(words)
    unknown = [w for w, i in zip(words, ids) if i == UNK_ID and w != "<unk>"]
    if unknown:
        print(f"note: {', '.join(unknown[:10])} not in the vocabulary: read as <unk>")
    return ids


def decode(vocab, ids: list[int]) -> str:
    tokens = vocab.decode(ids, skip_special=False)
    if vocab.level == "char":
        return "".join(tokens)
    return " ".join("\n" if t == EOS else t for t in tokens).replace(" \n ", "\n").replace(" \n", "\n")


def sample(model, vocab, cfg: GenerateConfig, prompt: str) -> list[str]:
    shown_prompt = prompt + (" " if vocab.level == "word" and prompt else "")
    return print_samples(model, encode_prompt(vocab, prompt), lambda ids: decode(vocab, ids), shown_prompt, cfg)


def main(argv: Sequence[str] | None = None) -> list[str]:
    cfg = parse_config(GenerateConfig, {}, argv, prog=f"python -m {STAGE}.generate",
                       description="Sample text from a trained RNN / GRU / LSTM language model.")
    device = resolve_device(cfg.device)  # first: a device this machine lacks fails at once
    model, vocab, _ = load_model(cfg.checkpoint or latest_run(STAGE), device)
    return run_prompts(cfg, lambda prompt: sample(model.eval(), vocab, cfg, prompt))


if __name__ == "__main__":
    run_main(main)
