#!/usr/bin/env bash
# Reproduces the update and migration figures of docs/performance.md
# ("Issue 13: updates and migrations"): starts `hallmark serve` on SQLite
# or PostgreSQL, registers a station and a product whose firmware policy
# names a vendor root, imports a fleet manifest, onboards the fleet keeping
# its certificate chains (fleet onboard --credentials-out), uploads an
# update image, creates a campaign for the whole fleet (a migration
# campaign with -m) and runs `hallmark fleet update`. It reports updates/s,
# migrations/s, per-step latency, the server's CPU time per device and the
# database's growth over the update run.
#
#   scripts/perf-ota.sh [-n DEVICES] [-d sqlite|postgres://…] [-c CONCURRENCY]
#                       [-m ml-dsa-65|ml-dsa-87|""] [-z IMAGE_BYTES] [-p CPUS]
#
#   -n  devices (default 1000)
#   -d  sqlite (default) or a PostgreSQL URL (its database is dropped and
#       created again first)
#   -c  devices updating at once (default 32)
#   -m  migrate the enrolment key to this suite (default ml-dsa-65; "" for
#       a plain update campaign)
#   -z  payload bytes of the update image (default 65536)
#   -p  CPU list for taskset, e.g. 0 or 0,1 (both server and client)
#
# With HALLMARK_PERF_NOBUILD=1 the binary already in the work directory is
# used. With HALLMARK_PERF_PPROF=SECONDS the server's CPU profile is taken
# over that many seconds from the start of the update run (cpu.pprof; read
# it with `go tool pprof -top hallmark cpu.pprof`). On PostgreSQL it also
# prints the transactions committed and the tables read by sequential
# scans over the update run. Work files live in
# ${HALLMARK_PERF_DIR:-/tmp/hallmark-perf-ota}; the agent's per-device
# files go to /dev/shm while the device is in flight.
set -euo pipefail
n=1000 db=sqlite conc=32 migrate=ml-dsa-65 size=65536 cpus=""
while getopts "n:d:c:m:z:p:" o; do
  case $o in
    n) n=$OPTARG ;; d) db=$OPTARG ;; c) conc=$OPTARG ;; m) migrate=$OPTARG ;; z) size=$OPTARG ;; p) cpus=$OPTARG ;;
    *) sed -n '2,31p' "$0"; exit 2 ;;
  esac
done
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${HALLMARK_PERF_DIR:-/tmp/hallmark-perf-ota}
mkdir -p "$work" && cd "$work"
pin=()
[ -n "$cpus" ] && pin=(taskset -c "$cpus")
[ -n "${HALLMARK_PERF_NOBUILD:-}" ] || (cd "$repo" && go build -o "$work/hallmark" ./cmd/hallmark)
export HALLMARK_KEYSTORE_PASSPHRASE=perf-passphrase
[ -d ks ] || ./hallmark station key create --keystore ks --pub-out station.pub >/dev/null
[ -f fleet.seed ] || head -c 32 /dev/urandom > fleet.seed
manifest=manifest-ecdsa-p256-$n.jsonl
[ -f "$manifest" ] || ./hallmark fleet manifest --seed-file fleet.seed --devices "$n" --keystore ks \
  --batch "ota-$n" --out "$manifest"
# The vendor's firmware root, the image the chips run and the update.
[ -f root.pem ] || ./hallmark keys generate --alg ecdsa-p256 --out root.pem --pub-out root.pub >/dev/null
[ -f base.hmfw ] || { echo "base firmware" > base.payload
  ./hallmark firmware sign --in base.payload --type app --version 1.0.0 --counter 1 --key root.pem -o base.hmfw >/dev/null; }
update=update-$size.hmfw
[ -f "$update" ] || { head -c "$size" /dev/urandom > "update-$size.payload"
  ./hallmark firmware sign --in "update-$size.payload" --type app --version 2.0.0 --counter 2 --key root.pem -o "$update" >/dev/null; }

dbflag=()
if [ "$db" != sqlite ]; then
  dbflag=(--database "$db")
  name=${db##*/}; name=${name%%\?*}
  psql "${db%/*}/postgres" -Atqc "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >/dev/null
fi
rm -rf data creds.bin
mkdir -p data
pprof=()
[ -n "${HALLMARK_PERF_PPROF:-}" ] && pprof=(--pprof-listen 127.0.0.1:6061)
"${pin[@]}" ./hallmark serve --data-dir data "${dbflag[@]}" "${pprof[@]}" --listen 127.0.0.1:0 --log-level warn \
  --rate-per-identity -1 --rate-per-address -1 > serve.out 2> serve.err &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q serving serve.out 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^hallmark serving at \([^ ]*\).*/\1/p' serve.out)
export HALLMARK_SERVER=$url HALLMARK_CA_FILE=data/ca/tls-root.pem HALLMARK_TOKEN
HALLMARK_TOKEN=$(cat data/admin.token)
dbsize() {
  if [ "$db" = sqlite ]; then du -cb data/hallmark.db* | tail -1 | cut -f1
  else psql "$db" -Atqc "SELECT pg_database_size(current_database())"; fi
}
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }

./hallmark admin station add --name perf --public-key station.pub >/dev/null
./hallmark admin product add --id perf --name Perf --cert-validity 8760h --cloud-endpoint mqtts://localhost:8883 \
  --firmware-root root.pub >/dev/null
t0=$(date +%s.%N)
./hallmark admin manifest import --product perf "$manifest" >/dev/null
t1=$(date +%s.%N)
"${pin[@]}" ./hallmark fleet onboard --seed-file fleet.seed --devices "$n" --concurrency 16 --verify=false \
  --credentials-out creds.bin --json > onboard.json
t2=$(date +%s.%N)
echo "setup: import $(echo "$t1 - $t0" | bc) s, onboarding $(echo "$t2 - $t1" | bc) s ($(ls -l creds.bin | awk '{print $5}') bytes of chains)"
./hallmark admin firmware upload --product perf "$update" >/dev/null
digest=$(sha256sum "$update" | cut -d' ' -f1)
mig=()
[ -n "$migrate" ] && mig=(--migrate-to "$migrate")
t3=$(date +%s.%N)
./hallmark admin campaign create --product perf --image "$digest" "${mig[@]}" --halt-at 1 --json > campaign.json
echo "campaign created in $(echo "$(date +%s.%N) - $t3" | bc) s"

size0=$(dbsize) cpu0=$(cpu) load0=$(cut -d' ' -f1-3 /proc/loadavg)
# On PostgreSQL, its statistics over the update run alone: transactions
# committed and the rows read by sequential scans, per table.
[ "$db" != sqlite ] && psql "$db" -Atqc "SELECT pg_stat_reset()" >/dev/null
[ -n "${HALLMARK_PERF_PPROF:-}" ] && curl -s -o cpu.pprof \
  "http://127.0.0.1:6061/debug/pprof/profile?seconds=$HALLMARK_PERF_PPROF" &
"${pin[@]}" /usr/bin/time -f "fleet update: %e s wall, %U s user, %S s system, %M KiB peak RSS" \
  ./hallmark fleet update --seed-file fleet.seed --devices "$n" --concurrency "$conc" --credentials creds.bin \
  --firmware-root root.pub --base-image base.hmfw --scratch-dir /dev/shm --json > update.json || true
cpu1=$(cpu) size1=$(dbsize) load1=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before: $load0; after: $load1"
python3 - "$n" "$(echo "($cpu1 - $cpu0) / 100" | bc -l)" "$size0" "$size1" <<'PY'
import json, sys
n, cpu, s0, s1 = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = json.load(open("update.json"))
print(f"{r['attempted']}/{n} devices: updated {r['updated']}, migrated {r['migrated']}, failed {r['failed']} "
      f"{r['failures'] or ''} in {r['wall_seconds']:.1f} s")
print(f"updates/s {r['updates_per_second']:.1f}, migrations/s {r['migrations_per_second']:.1f}")
for step, l in r["latency_ms"].items():
    print(f"  {step:20s} n={l['count']:.0f} p50 {l['p50']:.1f} ms  p99 {l['p99']:.1f} ms")
per = max(r["migrated"] or r["updated"], 1)
print(f"server CPU: {cpu:.1f} s, {cpu / per * 1e3:.2f} ms per {'migrated' if r['migrated'] else 'updated'} device")
print(f"database: {s0/1e6:.1f} MB -> {s1/1e6:.1f} MB ({(s1 - s0) / per:.0f} bytes per device)")
PY
grep VmHWM /proc/$pid/status
if [ "$db" != sqlite ]; then
  sleep 1 # the statistics collector's last report
  psql "$db" -Atqc "SELECT 'postgres: ' || xact_commit || ' transactions committed, ' || tup_returned || ' rows returned, ' || tup_fetched || ' fetched' FROM pg_stat_database WHERE datname = current_database()"
  psql "$db" -AtqF ' ' -c "SELECT 'sequential scans of', relname, seq_scan, 'reading', seq_tup_read, 'rows' FROM pg_stat_user_tables
    WHERE seq_tup_read > 0 ORDER BY seq_tup_read DESC LIMIT 5"
fi
