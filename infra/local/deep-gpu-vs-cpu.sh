#!/usr/bin/env bash
# The same deep training on the GPU and on the CPU — same code, data, network and epochs
# (early stopping off) — on M4 Hourly and Weekly: wall time of each, the speed-up, and the
# accuracy of each by ../shared/tools/m4_score.py. Needs JAX with CUDA for the GPU run
# (e.g. jax[cuda12]); without a GPU it says so and times the CPU alone.
# Usage: infra/local/deep-gpu-vs-cpu.sh [EPOCHS]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${ALMANAC_SHARED:-../shared}
EPOCHS=${1:-15}
OUT=$(mktemp -d)
FLAGS="--levels 0.025,0.1,0.5,0.9,0.975 --width 512 --layers 4 --blocks 4 --batch 1024 --steps-per-epoch 200 --max-epochs $EPOCHS --patience 1000"
platforms="cpu"
if JAX_PLATFORMS=cuda python3 -c 'import jax; jax.devices()' >/dev/null 2>&1; then platforms="cuda cpu"; else echo "no GPU visible to JAX: timing the CPU only" >&2; fi
for spec in "hourly 48 24" "weekly 13 52"; do
  set -- $spec
  python3 python/tools/m4_deep.py series "$SHARED/data/m4/$1-train.csv" "$OUT/$1.jsonl"
  for p in $platforms; do
    start=$(date +%s.%N)
    (cd python && JAX_PLATFORMS=$p python3 -m almanac_deep fit --series "$OUT/$1.jsonl" --horizon "$2" --season "$3" $FLAGS \
      --output "$OUT/$1-$p.out.jsonl" 2>"$OUT/$1-$p.log")
    secs=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
    echo "$1 $p ${secs}s $(grep -o '"device": "[^"]*"' "$OUT/$1-$p.log" | head -1) $(python3 python/tools/m4_deep.py score "$1" "$OUT/$1-$p.out.jsonl" "$SHARED/data/m4/$1-test.csv" "$SHARED/tools/m4_score.py")"
  done
done
