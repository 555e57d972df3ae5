#!/usr/bin/env bash
# More seeds of the stage 3 and stage 4 `gpu` presets on Multi30k de -> en, all at once on one GPU.
#
#   bash bench/gpu_translation_seeds.sh OUT_DIR SECONDS_PER_RUN SEED...
#
# Each run is stopped with SIGINT after SECONDS_PER_RUN (then scored and recorded as interrupted).
# Writes OUT_DIR/runs.tgz (metrics, histories, hypotheses; no checkpoints) and OUT_DIR/summary.txt.
set -u
OUT=${1:?usage: bash bench/gpu_translation_seeds.sh OUT_DIR SECONDS_PER_RUN SEED...}
LIMIT=${2:?seconds per run}
shift 2
mkdir -p "$OUT" runs/gpu-logs
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
for seed in "$@"; do
    for stage in stage3_attention_seq2seq stage4_transformer; do
        (timeout -s INT -k 60 "$LIMIT" $PY -m $stage.train --preset gpu --src de --tgt en --seed "$seed" \
            > "runs/gpu-logs/$stage-s$seed.log" 2>&1; echo "$stage seed $seed: exit $?") &
    done
done
wait
tar czf "$OUT/runs.tgz" --exclude='*.pt' runs
$PY - <<'PYEOF' | tee "$OUT/summary.txt"
import json, pathlib
for path in sorted(pathlib.Path("runs").glob("stage*/*/metrics.json")):
    m = json.loads(path.read_text())
    print(f"{path.parent.parent.name}/{path.parent.name}: BLEU {m['test_bleu']:.2f} beam {m['test_bleu_beam']:.2f} "
          f"tok-lower {m['test_bleu_tok_lower']:.2f} beam {m['test_bleu_tok_lower_beam']:.2f} "
          f"steps {m['steps']} train {m['train_seconds']} s interrupted {m['interrupted']}")
PYEOF
