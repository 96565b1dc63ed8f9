#!/usr/bin/env bash
# Runs M4 Hourly (h=48) and Weekly (h=13) through `almanac forecast` and scores them with
# ../shared/tools/m4_score.py: sMAPE, MASE, OWA, MSIS, ACD and wall time per frequency.
# Usage: infra/local/bench-m4.sh [HOURLY_MODELS] [WEEKLY_MODELS]   (default: auto auto)
#        BENCH_MODELS="auto deep champion" infra/local/bench-m4.sh   (each model on both)
# DEEP_OPTIONS: flags for the deep trainer (default: 3 members, 200 steps per epoch).
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${ALMANAC_SHARED:-../shared}
DATA="$SHARED/data/m4"
SCORE="$SHARED/tools/m4_score.py"
[ -f "$SCORE" ] || { echo "no $SCORE: put the shared folder beside the checkout or set ALMANAC_SHARED" >&2; exit 1; }
python3 -c 'import numpy' 2>/dev/null || pip install -q numpy
swift build -c release --product almanac >&2
OUT=$(mktemp -d)
printf '%-8s %-24s %8s %7s %7s %8s %7s %9s\n' frequency model sMAPE MASE OWA MSIS ACD seconds
specs=()
if [ -n "${BENCH_MODELS:-}" ]; then
  for f in "hourly 48" "weekly 13"; do for m in $BENCH_MODELS; do specs+=("$f $m"); done; done
else
  specs=("hourly 48 ${1:-auto}" "weekly 13 ${2:-auto}")
fi
for spec in "${specs[@]}"; do
  set -- $spec
  start=$(python3 -c "import time; print(time.time())")
  .build/release/almanac forecast --input "$DATA/$1-train.csv" --horizon "$2" --models "$3" \
    --deep-options="${DEEP_OPTIONS:---members 3 --steps-per-epoch 200}" \
    --quantiles 0.025,0.1,0.5,0.9,0.975 --output "$OUT/$1.csv" 2>"$OUT/$1-$3.log" || { cat "$OUT/$1-$3.log" >&2; exit 1; }
  grep -h "^champion" "$OUT/$1-$3.log" >&2 || true
  secs=$(python3 -c "import time; print(time.time() - $start)")
  python3 "$SCORE" "$1" "$OUT/$1.csv" --point-col p50 --lo-col p2.5 --hi-col p97.5 --json \
    | python3 -c "import json,sys; r=json.load(sys.stdin); print('%-8s %-24s %8.3f %7.3f %7.3f %8.3f %7.3f %9.2f' % ('$1','$3',r['smape'],r['mase'],r['owa'],r['msis'],r['acd'],$secs))"
done
