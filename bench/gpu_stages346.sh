#!/usr/bin/env bash
# Stages 3, 4 and 6 on one CUDA GPU, in one go (the runs are small: they share the GPU in parallel).
#
#   bash bench/gpu_stages346.sh OUT_DIR [SECONDS_PER_RUN]
#
# 1. CUDA checks: the Transformer's SDPA path equals the written-out one (fp32, and close in bf16),
#    incremental decoding equals full decoding, and both translation models train a step in bf16.
# 2. The `gpu` presets: stage 3 (Bahdanau) and stage 4 (Transformer) on Multi30k de -> en (the
#    direction with published numbers) and en -> fr; stage 5 pretrained on WikiText-2 (`gpu`
#    preset), then stage 6 finetuned from it (head / last_block / all / lora) and from random init.
#    Each translation run gets SECONDS_PER_RUN (default 420; stage 5 a third, each stage 6 run an
#    eighth) and is then stopped with SIGINT: the shared loop saves, and the run is scored and
#    recorded as interrupted.
# Writes OUT_DIR/runs.tgz (every run's metrics.json, history.csv and hypotheses, no checkpoints) and
# OUT_DIR/summary.txt. Runs share the GPU, so their train_seconds are upper bounds.
set -u
OUT=${1:?usage: bash bench/gpu_stages346.sh OUT_DIR [SECONDS_PER_RUN]}
LIMIT=${2:-420}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOGS=runs/gpu-logs
mkdir -p "$LOGS"

$PY - <<'EOF' 2>&1 | tee "$LOGS/cuda_checks.txt"
import torch
from stage4_transformer.model import Transformer, TransformerConfig
from stage3_attention_seq2seq.model import Seq2Seq, Seq2SeqConfig
torch.manual_seed(0)
dev = "cuda"
cfg = TransformerConfig(500, 500, d_model=256, n_heads=8, dropout=0.0)
manual = Transformer(cfg).to(dev).eval()
fast = Transformer(TransformerConfig(**{**cfg.__dict__, "attention": "sdpa"})).to(dev).eval()
fast.load_state_dict(manual.state_dict())
src, tgt = torch.randint(4, 500, (16, 30), device=dev), torch.randint(4, 500, (16, 25), device=dev)
src[:, 20:] = 0
with torch.no_grad():
    a, b = manual(src, None, tgt), fast(src, None, tgt)
    print("sdpa vs manual fp32 max abs diff", float((a - b).abs().max()))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        a16, b16 = manual(src, None, tgt).float(), fast(src, None, tgt).float()
    print("sdpa vs manual bf16 max abs diff", float((a16 - b16).abs().max()), "(logit scale", float(a.abs().max()), ")")
    full = torch.log_softmax(manual(src, None, tgt), -1)
    state = manual.decode_start(src, None)
    worst = 0.0
    for t in range(tgt.size(1) - 1):
        step, state = manual.decode_step(tgt[:, t], state)
        worst = max(worst, float((step - full[:, t]).abs().max()))
    print("incremental vs full decoding max abs diff", worst)
for model in (fast.train(), Seq2Seq(Seq2SeqConfig(500, 500)).to(dev).train()):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(src, (src != 0).sum(1), tgt)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), tgt[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    print(type(model).__name__, "bf16 training loss", round(losses[0], 3), "->", round(losses[-1], 3))
EOF

run() {  # name, seconds, then the command
    local name=$1 seconds=$2
    shift 2
    timeout -s INT -k 60 "$seconds" "$@" > "$LOGS/$name.log" 2>&1
    echo "$name: exit $? ($(date +%T))"
}
run s3-de-en "$LIMIT" $PY -m stage3_attention_seq2seq.train --preset gpu --src de --tgt en &
run s4-de-en "$LIMIT" $PY -m stage4_transformer.train --preset gpu --src de --tgt en &
run s3-en-fr "$LIMIT" $PY -m stage3_attention_seq2seq.train --preset gpu &
run s4-en-fr "$LIMIT" $PY -m stage4_transformer.train --preset gpu &
(
    run s5-wikitext2 $((LIMIT / 3)) $PY -m stage5_gpt.train --preset gpu --dataset wikitext2
    for trainable in head last_block all lora; do
        run "s6-$trainable" $((LIMIT / 8)) $PY -m stage6_finetune_cls.train --preset gpu --trainable "$trainable" \
            --init_from runs/stage5_gpt/wikitext2-gpu
    done
    run s6-random $((LIMIT / 8)) $PY -m stage6_finetune_cls.train --preset gpu --trainable all --init_from random \
        --random_shape 6,6,384,256
) &
wait

tar czf "$OUT/runs.tgz" --exclude='*.pt' runs
$PY - <<'EOF' | tee "$OUT/summary.txt"
import json, pathlib
for path in sorted(pathlib.Path("runs").glob("stage*/*/metrics.json")):
    m = json.loads(path.read_text())
    keys = [k for k in ("test_bleu", "test_bleu_beam", "test_bleu_tok_lower", "test_bleu_tok_lower_beam",
                        "test_chrf", "test_accuracy", "val_perplexity", "test_perplexity") if k in m]
    shown = "  ".join(f"{k} {m[k]:.4g}" for k in keys)
    print(f"{path.parent.parent.name}/{path.parent.name}: {shown}  train {m.get('train_seconds')} s  "
          f"steps {m.get('steps')}  interrupted {m.get('interrupted')}")
EOF
cat "$LOGS/cuda_checks.txt" >> "$OUT/summary.txt"
