#!/usr/bin/env bash
# The main job on the embedded default: start Almanac (private Postgres, Kafka mock cluster,
# router, launcher, ingress, drop-folder watcher) with the pipeline's functions, then push a
# small real dataset through it — data arrival → ingest → train → forecast → export → signed
# webhook to a local receiver — and a second arrival of later actuals to show the monitor.
# The sample is three series of the M4 competition's Hourly set (examples/forecast/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
ALMANAC=.build/debug/almanac
STATE=.almanac
SAMPLE=examples/forecast
mkdir -p "$STATE"
rm -f "$STATE/endpoints.env"
# The demo's webhook receiver listens on 127.0.0.1: let tenants point endpoints at loopback here.
export ALMANAC_WEBHOOKS_ALLOW_PRIVATE=1
"$ALMANAC" up --state "$STATE" > "$STATE/up.out" 2>&1 &
UP=$!
RECEIVER=""
cleanup() {
  [ -n "$RECEIVER" ] && kill "$RECEIVER" 2>/dev/null || true
  kill -INT $UP 2>/dev/null; wait $UP 2>/dev/null
  echo "(almanac up stopped; run it yourself with: $ALMANAC up)"
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  [ -s "$STATE/endpoints.env" ] && grep -q '^ready' "$STATE/up.out" && break
  kill -0 $UP 2>/dev/null || { cat "$STATE/up.out"; exit 1; }
  sleep 0.2
done
cat "$STATE/up.out"
set -a; . "$STATE/endpoints.env"; set +a
sql() { psql "$DATABASE_URL" -tAc "$1"; }
wait_for() {  # wait_for "what" SQL-returning-a-count N
  for _ in $(seq 1 900); do
    [ "$(sql "$2")" -ge "$3" ] && return 0
    sleep 0.2
  done
  echo "timed out waiting for $1"; "$ALMANAC" status --state "$STATE"; exit 1
}

echo
echo "== a local webhook receiver that verifies Standard Webhooks signatures"
HOOKS="$STATE/demo-webhooks"
rm -rf "$HOOKS"; mkdir -p "$HOOKS"
python3 infra/local/webhook-receiver.py "$HOOKS/port" "$HOOKS/received" "$HOOKS/secret" > "$HOOKS/receiver.log" 2>&1 &
RECEIVER=$!
for _ in $(seq 1 50); do [ -s "$HOOKS/port" ] && break; sleep 0.1; done
echo "listening on http://127.0.0.1:$(cat "$HOOKS/port")/hook"

DATASET="m4-hourly-$(date +%s)"
echo
echo "== the tenant commands speak the /v1 API at \$ALMANAC_HTTP with \$ALMANAC_TOKEN (from $STATE/endpoints.env): $ALMANAC_HTTP"
echo "== almanac datasets create $DATASET --horizon 48 --frequency hourly"
"$ALMANAC" datasets create --state "$STATE" "$DATASET" --horizon 48 --frequency hourly
echo
echo "== almanac webhooks add --url http://127.0.0.1:PORT/hook --events 'almanac.forecast.*,almanac.accuracy.breached' --allow-private"
"$ALMANAC" webhooks add --state "$STATE" --url "http://127.0.0.1:$(cat "$HOOKS/port")/hook" \
  --events 'almanac.forecast.exported,almanac.accuracy.breached' --allow-private | tee "$HOOKS/endpoint.txt"
awk '/^secret/ {print $2}' "$HOOKS/endpoint.txt" > "$HOOKS/secret"

echo
echo "== data arrives: $SAMPLE/m4-hourly-history.csv dropped into $STATE/drop/default/$DATASET/ (the watcher publishes almanac.data.arrived)"
mkdir -p "$STATE/drop/default/$DATASET"
cp "$SAMPLE/m4-hourly-history.csv" "$STATE/drop/default/$DATASET/.history.csv.part"
mv "$STATE/drop/default/$DATASET/.history.csv.part" "$STATE/drop/default/$DATASET/history.csv"
wait_for "the first export" "SELECT count(*) FROM event_archive WHERE type = 'almanac.forecast.exported' AND subject = '$DATASET'" 1
wait_for "the webhook" "SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered' AND event_type = 'almanac.forecast.exported'" 1
echo
echo "== the chain, from the event archive"
psql "$DATABASE_URL" -c "SELECT type, source, left(event->>'data', 110) AS data FROM event_archive
  WHERE subject = '$DATASET' ORDER BY archived_at"
echo "== the forecast table (almanac query --dataset $DATASET --item H1 | head)"
"$ALMANAC" query --state "$STATE" --dataset "$DATASET" --item H1 | head -n 6
echo "..."
EXPORT_DIR="$STATE/export/default/$DATASET"
echo "== the export: $EXPORT_DIR/latest.csv ($(($(wc -l < "$EXPORT_DIR/latest.csv") - 1)) rows) and the chart $EXPORT_DIR/latest.svg"
head -n 3 "$EXPORT_DIR/latest.csv"
echo "== the webhook, as the receiver saw it"
cat "$HOOKS/receiver.log"

echo
echo "== later data arrives: the next 48 hours of the same series (the M4 test set), uploaded with almanac data upload"
"$ALMANAC" data upload --state "$STATE" "$DATASET" "$SAMPLE/m4-hourly-next.csv" --wait
wait_for "the monitor's measurement" "SELECT count(*) FROM accuracy_measurements WHERE dataset = '$DATASET'" 1
echo "== the monitor measured the live forecast on the new actuals"
psql "$DATABASE_URL" -c "SELECT forecast_id, points, round(wape::numeric, 4) AS wape, round(mase::numeric, 3) AS mase,
  round(wql::numeric, 4) AS wql, round(bound::numeric, 4) AS bound, breached FROM accuracy_measurements WHERE dataset = '$DATASET'"
if [ "$(sql "SELECT count(*) FROM accuracy_measurements WHERE dataset = '$DATASET' AND breached")" = "1" ]; then
  echo "== the error breached its bound: retraining, then a new forecast"
  wait_for "the retrained predictor" "SELECT count(*) FROM predictors WHERE dataset = '$DATASET'" 2
  wait_for "its forecast's export" "SELECT count(*) FROM event_archive WHERE type = 'almanac.forecast.exported' AND subject = '$DATASET'" 3
else
  echo "== within its bound: a new forecast with the existing predictor"
  wait_for "the second export" "SELECT count(*) FROM event_archive WHERE type = 'almanac.forecast.exported' AND subject = '$DATASET'" 2
fi
wait_for "the webhooks" "SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered' AND event_type = 'almanac.forecast.exported'" \
  "$(sql "SELECT count(*) FROM event_archive WHERE type = 'almanac.forecast.exported' AND subject = '$DATASET'")"
psql "$DATABASE_URL" -c "SELECT id AS predictor, dataset_version, items, round((metrics->>'WAPE')::numeric, 4) AS backtest_wape, created_at
  FROM predictors WHERE dataset = '$DATASET' ORDER BY created_at"
echo "== almanac webhooks deliveries"
"$ALMANAC" webhooks deliveries --state "$STATE" --limit 4
echo "== the receiver's log"
cat "$HOOKS/receiver.log"
echo
echo "== almanac status"
"$ALMANAC" status --state "$STATE"
echo
echo "== waiting for the idle instances to exit (scale to zero)"
for _ in $(seq 1 300); do
  n=$(sql "SELECT count(*) FROM function_instances")
  [ "$n" = "0" ] && break
  sleep 0.2
done
sql "SELECT 'instances running: ' || count(*) FROM function_instances"
echo "forecast CSV: $EXPORT_DIR/latest.csv   chart: $EXPORT_DIR/latest.svg"
echo "the console: with $ALMANAC up running, open $ALMANAC_HTTP/console and sign in with the token in $STATE/endpoints.env (docs/console.md)"
