#!/usr/bin/env bash
# The main job on the embedded default: start Almanac (private Postgres, Kafka mock
# cluster, router, launcher, ingress), send a data event over HTTP as a business system
# would, and watch it flow through a chain of functions started on demand.
set -euo pipefail
cd "$(dirname "$0")/../.."
ALMANAC=.build/debug/almanac
STATE=.almanac
FUNCTIONS=examples/chain/functions
mkdir -p "$STATE"
rm -f "$STATE/endpoints.env"
"$ALMANAC" up --state "$STATE" --functions "$FUNCTIONS" > "$STATE/up.out" 2>&1 &
UP=$!
trap 'kill -INT $UP 2>/dev/null; wait $UP 2>/dev/null; echo "(almanac up stopped; run it yourself with: $ALMANAC up)"' EXIT
for _ in $(seq 1 600); do
  [ -s "$STATE/endpoints.env" ] && grep -q '^ready' "$STATE/up.out" && break
  kill -0 $UP 2>/dev/null || { cat "$STATE/up.out"; exit 1; }
  sleep 0.2
done
cat "$STATE/up.out"
set -a; . "$STATE/endpoints.env"; set +a

echo
echo "== POST a CloudEvent to the ingress ($ALMANAC_HTTP/events)"
ID="demo-$(date +%s)"
curl -sS -X POST "$ALMANAC_HTTP/events" \
  -H "Authorization: Bearer $ALMANAC_TOKEN" \
  -H "Content-Type: application/cloudevents+json" \
  -d "{\"specversion\":\"1.0\",\"id\":\"$ID\",\"source\":\"demo/shell\",\"type\":\"demo.hello\",\"subject\":\"demo\",\"data\":{\"name\":\"Ada\"}}"

echo "== and one that fails its schema (it is dead-lettered, the pipeline goes on)"
curl -sS -X POST "$ALMANAC_HTTP/events" -H "Authorization: Bearer $ALMANAC_TOKEN" \
  -H "ce-specversion: 1.0" -H "ce-id: $ID-bad" -H "ce-source: demo/shell" -H "ce-type: demo.hello" \
  -H "Content-Type: application/json" -d '{"name": ""}'

echo "== waiting for the chain: demo.hello -> greet -> demo.greeted -> tally -> demo.tallied"
for _ in $(seq 1 300); do
  n=$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM event_archive WHERE type = 'demo.tallied' AND correlation_id = '$ID'")
  [ "$n" = "1" ] && break
  sleep 0.2
done
echo
echo "== the chain, from the event archive (almanac replay --dry-run --causation $ID)"
"$ALMANAC" replay --state "$STATE" --causation "$ID" --dry-run
psql "$DATABASE_URL" -c "SELECT type, source, event->'data' AS data FROM event_archive WHERE id = '$ID' OR correlation_id = '$ID' ORDER BY archived_at"
echo "== almanac status"
"$ALMANAC" status --state "$STATE" --functions "$FUNCTIONS"
echo
echo "== almanac dlq list"
"$ALMANAC" dlq list --state "$STATE"
echo
echo "== the greet function's log (almanac logs greet)"
"$ALMANAC" logs --state "$STATE" greet | tail -n 6
echo
echo "== waiting for the idle instances to exit (scale to zero)"
for _ in $(seq 1 100); do
  n=$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM function_instances")
  [ "$n" = "0" ] && break
  sleep 0.2
done
psql "$DATABASE_URL" -tAc "SELECT 'instances running: ' || count(*) FROM function_instances"
