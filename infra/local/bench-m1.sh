#!/usr/bin/env bash
# M1 yearly, quarterly and monthly through `almanac forecast` next to statsforecast's AutoETS,
# AutoARIMA, AutoTheta and their mean, in the same run: sMAPE, MASE, interval coverage and
# seconds per method, JSON last line (python/bench/peers.py). statsforecast lives in a
# benchmark-only environment, .build-bench/venv (python/bench/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${ALMANAC_SHARED:-../shared}
SCORE="$SHARED/tools/score.py"
[ -f "$SCORE" ] || { echo "no $SCORE: put the shared folder beside the checkout or set ALMANAC_SHARED" >&2; exit 1; }
VENV=.build-bench/venv
if ! "$VENV/bin/python" -c 'import statsforecast, pandas' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r python/bench/requirements.txt >&2
fi
swift build -c release --product almanac >&2
"$VENV/bin/python" python/bench/peers.py .build/release/almanac "$SCORE" "$SHARED/data/m1/yearly" "$SHARED/data/m1/quarterly" "$SHARED/data/m1/monthly"
