"""The theory pages' worked examples, computed by the course's own code: `python bench/worked_examples.py [--write]`.

Each example is small enough to follow by hand (attention over three tokens, temperature / top-k /
top-p on five logits, GPT-2 small's 124M parameters counted part by part), and every number in it is
computed here by the function the stage trains with, so a page cannot drift from the code:
tests/test_docs.py renders them again and compares. --write puts each into its
`<!-- worked NAME -->` block in the English and Chinese page.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from shared.sampling import next_token_probs  # noqa: E402
from stage4_transformer.model import scaled_dot_product_attention  # noqa: E402
from stage5_gpt.model import GPT, GPTConfig  # noqa: E402

WORDS = {  # the few words the tables need, in each page's language
    "en": dict(token="token", query="query", score="score with key {}", weight="weight on key {}", output="output",
               causal="with the causal mask:", part="part", shape="shape", count="parameters", per_block="one block",
               blocks="12 blocks", total="total", tied="lm_head: tied to wte, no weights of its own",
               logit="logit", mass="mass of the tokens ranked above"),
    "zh": dict(token="词元", query="查询", score="与键 {} 的分数", weight="键 {} 的权重", output="输出",
               causal="加因果掩码：", part="部分", shape="形状", count="参数量", per_block="一个块",
               blocks="12 个块", total="合计", tied="lm_head：与 wte 共享权重，没有自己的参数",
               logit="logit", mass="排在它前面的词元的概率和"),
}


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(head, rows) -> str:
    return "\n".join([_row(head), "|" + "---|" * len(head), *[_row(r) for r in rows]])


def _vec(t: torch.Tensor) -> str:
    return "(" + ", ".join(f"{x:g}" for x in t.tolist()) + ")"


def attention_three_tokens(lang: str) -> str:
    """softmax(q kᵀ / sqrt(d_k)) v for three tokens, d_k = 4 so that sqrt(d_k) = 2, with and without the mask."""
    w = WORDS[lang]
    q = torch.tensor([[2., 0, 2, 0], [0, 2, 0, 2], [2, 2, 0, 0]])  # (T=3, d_k=4)
    k = torch.tensor([[1., 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]])
    v = torch.tensor([[1., 0], [0, 1], [1, 1]])  # (S=3, 2)
    scores = q @ k.T / 2  # (3, 3)
    out, weights = scaled_dot_product_attention(q[None, None], k[None, None], v[None, None])
    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    masked_out, masked = scaled_dot_product_attention(q[None, None], k[None, None], v[None, None], causal)
    lines = [_table([w["token"], "q", "k", "v"], [[i + 1, _vec(q[i]), _vec(k[i]), _vec(v[i])] for i in range(3)]),
             ""]
    head = [w["query"], *[w["score"].format(j + 1) for j in range(3)], *[w["weight"].format(j + 1) for j in range(3)],
            w["output"]]
    rows = [[i + 1, *[f"{s:g}" for s in scores[i].tolist()], *[f"{x:.3f}" for x in weights[0, 0, i].tolist()],
             "(" + ", ".join(f"{x:.3f}" for x in out[0, 0, i].tolist()) + ")"] for i in range(3)]
    lines += [_table(head, rows), "", w["causal"], ""]
    rows = [[i + 1, *[f"{s:g}" if causal[i, j] else "−∞" for j, s in enumerate(scores[i].tolist())],
             *[f"{x:.3f}" for x in masked[0, 0, i].tolist()],
             "(" + ", ".join(f"{x:.3f}" for x in masked_out[0, 0, i].tolist()) + ")"] for i in range(3)]
    lines.append(_table(head, rows))
    return "\n".join(lines)


LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])  # five tokens, already in order, most likely first


def sampling_five_logits(lang: str) -> str:
    """The distribution the next token is drawn from, as shared.sampling.next_token_probs computes it."""
    w = WORDS[lang]

    def probs(**how) -> list[float]:
        return next_token_probs(LOGITS[None], **how)[0].tolist()

    plain = probs()
    before = [sum(plain[:i]) for i in range(5)]
    settings = [("τ = 0.5", dict(temperature=0.5)), ("τ = 1", {}), ("τ = 2", dict(temperature=2.0)),
                ("top-k 2", dict(top_k=2)), ("top-p 0.9", dict(top_p=0.9)), ("τ = 0", dict(temperature=0))]
    columns = [probs(**how) for _, how in settings]
    head = [w["token"], w["logit"], *[name for name, _ in settings[:3]], f"{w['mass']} (τ = 1)",
            *[name for name, _ in settings[3:]]]
    rows = []
    for i in range(5):
        cells = [f"{c[i]:.3f}" for c in columns]
        rows.append(["ABCDE"[i], f"{LOGITS[i].item():g}", *cells[:3], f"{before[i]:.3f}", *cells[3:]])
    return _table(head, rows)


def gpt2_parameters(lang: str) -> str:
    """GPT-2 small's parameters counted from the stage 5 model itself (built on the meta device: no memory)."""
    w = WORDS[lang]
    with torch.device("meta"):
        model = GPT(GPTConfig())  # the defaults are GPT-2 small: 50,257 tokens, 1,024 positions, 12 x 768
    params = dict(model.named_parameters())  # a tied weight is listed once

    def formula(shape) -> str:
        return " × ".join(f"{n:,}" for n in shape)

    rows, block = [], 0
    for name in ("transformer.wte.weight", "transformer.wpe.weight"):
        rows.append([f"`{name.split('.', 1)[1]}`", formula(params[name].shape), f"{params[name].numel():,}"])
    for name, p in params.items():
        if name.startswith("transformer.h.0."):
            rows.append([f"`{name.split('.', 3)[3]}`", formula(p.shape), f"{p.numel():,}"])
            block += p.numel()
    n_blocks = len(model.transformer.h)
    rows.append([f"**{w['per_block']}**", "", f"**{block:,}**"])
    rows.append([f"**{w['blocks']}**", f"{n_blocks} × {block:,}", f"**{n_blocks * block:,}**"])
    for name in ("transformer.ln_f.weight", "transformer.ln_f.bias"):
        rows.append([f"`{name.split('.', 1)[1]}`", formula(params[name].shape), f"{params[name].numel():,}"])
    rows.append([w["tied"], "", "0"])
    total = sum(p.numel() for p in params.values())
    rows.append([f"**{w['total']}**", "", f"**{total:,}**"])
    return _table([w["part"], w["shape"], w["count"]], rows)


EXAMPLES = {  # name -> (renderer, the English page; the Chinese one is the same name under docs/zh/)
    "attention-three-tokens": (attention_three_tokens, "stage4_transformer.md"),
    "sampling-five-logits": (sampling_five_logits, "stage5_gpt.md"),
    "gpt2-parameters": (gpt2_parameters, "stage5_gpt.md"),
}


def pages(name: str) -> list[tuple[str, Path]]:
    page = EXAMPLES[name][1]
    return [("en", REPO / "docs" / page), ("zh", REPO / "docs" / "zh" / page)]


def block_pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- worked {re.escape(name)} -->\n)(.*?)(<!-- /worked -->)", re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="put each example into its block in the pages")
    args = parser.parse_args()
    for name, (render, _) in EXAMPLES.items():
        for lang, path in pages(name):
            text = render(lang)
            print(f"\n### {name} ({lang})\n\n{text}")
            if args.write:
                doc = path.read_text(encoding="utf-8")
                if not block_pattern(name).search(doc):
                    sys.exit(f"{path} has no <!-- worked {name} --> block: add one where the example goes")
                doc = block_pattern(name).sub(lambda m, new=text: m.group(1) + new + "\n" + m.group(3), doc)
                path.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
