#!/usr/bin/env bash
# Reproduces the onboarding figures of docs/performance.md: starts
# `hallmark serve` on SQLite or PostgreSQL, registers a station and a
# product, imports a fleet manifest, onboards the fleet with
# `hallmark fleet onboard` and reports throughput, latency, the crypto
# ceiling measured right after in the same run, CPU time of both processes
# and the server's peak RSS.
#
#   scripts/perf-onboard.sh [-s SUITE] [-n DEVICES] [-o ONBOARD] [-d sqlite|postgres://…]
#                           [-c CONCURRENCY] [-r REPLICAS] [-p CPUS] [-k] [-H]
#
#   -s  enrolment key suite of the fleet (ecdsa-p256, ml-dsa-65, …)
#   -n  devices (the manifest is generated once into the work directory)
#   -o  how many of them to onboard (default all)
#   -d  sqlite (default) or a PostgreSQL URL (its database is emptied first)
#   -c  onboardings in flight per replica
#   -r  replicas (PostgreSQL only): the fleet is split across them
#   -p  CPU list for taskset, e.g. 0 or 0,1 (both server and client)
#   -k  keep the registry: skip the import and onboard again (restart test)
#   -H  keep the CA's keys and the TLS key in a SoftHSM2 token the script
#       makes (Debian package softhsm2), through --ca-key-uri pkcs11:…
#
# The servers take any other setting from HALLMARK_* variables, e.g.
# HALLMARK_SQLITE_SYNCHRONOUS=normal for the durability comparison of
# docs/performance.md.
#
# Work files live in ${HALLMARK_PERF_DIR:-/tmp/hallmark-perf}. With
# HALLMARK_PERF_RESTART=1 the servers restart after the import, so the
# peak RSS reported at the end is that of serving, not of importing.
set -euo pipefail
suite=ecdsa-p256 n=20000 onboard="" db=sqlite conc=16 replicas=1 cpus="" keep="" hsm=""
while getopts "s:n:o:d:c:r:p:kH" o; do
  case $o in
    s) suite=$OPTARG ;; n) n=$OPTARG ;; o) onboard=$OPTARG ;; d) db=$OPTARG ;; c) conc=$OPTARG ;;
    r) replicas=$OPTARG ;; p) cpus=$OPTARG ;; k) keep=1 ;; H) hsm=1 ;;
    *) sed -n '2,29p' "$0"; exit 2 ;;
  esac
done
onboard=${onboard:-$n}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${HALLMARK_PERF_DIR:-/tmp/hallmark-perf}
mkdir -p "$work" && cd "$work"
pin=()
[ -n "$cpus" ] && pin=(taskset -c "$cpus")
(cd "$repo" && go build -o "$work/hallmark" ./cmd/hallmark)
export HALLMARK_KEYSTORE_PASSPHRASE=perf-passphrase
[ -d ks ] || ./hallmark station key create --keystore ks --pub-out station.pub >/dev/null
[ -f fleet.seed ] || head -c 32 /dev/urandom > fleet.seed
manifest=manifest-$suite-$n.jsonl
[ -f "$manifest" ] || ./hallmark fleet manifest --seed-file fleet.seed --devices "$n" --suite "$suite" \
  --keystore ks --batch "fleet-$suite-$n" --out "$manifest"

dbflag=()
if [ "$db" != sqlite ]; then
  dbflag=(--database "$db")
  if [ -z "$keep" ]; then
    name=${db##*/}; name=${name%%\?*}
    psql "${db%/*}/postgres" -Atqc "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >/dev/null
  fi
elif [ "$replicas" != 1 ]; then
  echo "replicas need PostgreSQL (-d postgres://…)" >&2; exit 2
fi
[ -z "$keep" ] && rm -rf data
mkdir -p data
caflag=()
if [ -n "$hsm" ]; then
  # A throwaway token of this run: its own token directory and config
  # (SoftHSM2 reads SOFTHSM2_CONF when the server loads the module), a
  # random PIN in a 0600 file the server reads through pin-source. The
  # PIN is on softhsm2-util's command line once, for a token that lives as
  # long as this run.
  module=/usr/lib/softhsm/libsofthsm2.so
  [ -e "$module" ] || { echo "perf-onboard: -H needs SoftHSM2: install the Debian package softhsm2" >&2; exit 1; }
  export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
  if [ -z "$keep" ] || ! [ -f softhsm/pin ]; then
    rm -rf softhsm && mkdir -p softhsm/tokens && chmod 700 softhsm
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/softhsm/tokens" > "$SOFTHSM2_CONF"
    (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > softhsm/pin)
    softhsm2-util --init-token --free --label perf-ca --pin "$(cat softhsm/pin)" --so-pin "$(cat softhsm/pin)" >/dev/null
  fi
  caflag=(--ca-key-uri "pkcs11:token=perf-ca?module-path=$module&pin-source=file:$work/softhsm/pin")
fi
pids=() urls=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start_servers() {
  pids=() urls=()
  for i in $(seq 0 $((replicas - 1))); do
    "${pin[@]}" ./hallmark serve --data-dir data "${dbflag[@]}" "${caflag[@]}" --listen 127.0.0.1:0 --log-level warn \
      --rate-per-identity -1 --rate-per-address -1 > "serve-$i.out" 2> "serve-$i.err" &
    pids+=($!)
  done
  for i in $(seq 0 $((replicas - 1))); do
    for _ in $(seq 300); do grep -q serving "serve-$i.out" 2>/dev/null && break; sleep 0.1; done
    urls+=("$(sed -n 's/^hallmark serving at \([^ ]*\).*/\1/p' "serve-$i.out")")
  done
}
start_servers
export HALLMARK_SERVER=${urls[0]} HALLMARK_CA_FILE=data/ca/tls-root.pem HALLMARK_TOKEN
HALLMARK_TOKEN=$(cat data/admin.token)
if [ -z "$keep" ]; then
  ./hallmark admin station add --name perf --public-key station.pub >/dev/null
  ./hallmark admin product add --id perf --name Perf --cert-validity 8760h --cloud-endpoint mqtts://localhost:8883 >/dev/null
  start=$(date +%s.%N)
  ./hallmark admin manifest import --product perf "$manifest"
  echo "import: $(echo "$(date +%s.%N) - $start" | bc) s; server peak RSS so far:"
  for p in "${pids[@]}"; do grep VmHWM /proc/$p/status; done
  if [ "${HALLMARK_PERF_RESTART:-}" = 1 ]; then
    # Measure the load's memory apart from the import's: restart the servers.
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    start_servers
  fi
fi
per=$((onboard / replicas))
cpu0=$(for p in "${pids[@]}"; do awk '{print $14 + $15}' /proc/$p/stat; done | paste -sd+ | bc)
fleetpids=()
for i in $(seq 0 $((replicas - 1))); do
  "${pin[@]}" ./hallmark fleet onboard --server "${urls[$i]}" --seed-file fleet.seed --suite "$suite" \
    --from $((i * per)) --devices "$per" --concurrency "$conc" --verify=false --json > "fleet-$i.json" &
  fleetpids+=($!)
done
wait "${fleetpids[@]}"
cpu1=$(for p in "${pids[@]}"; do awk '{print $14 + $15}' /proc/$p/stat; done | paste -sd+ | bc)
python3 - "$replicas" "$onboard" "$(echo "($cpu1 - $cpu0) / 100" | bc -l)" <<'PY'
import json, sys
r, n, cpu = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
reps = [json.load(open(f"fleet-{i}.json")) for i in range(r)]
done = sum(x["onboarded"] for x in reps)
wall = max(x["wall_seconds"] for x in reps)
errs = {}
for x in reps:
    for k, v in (x.get("errors") or {}).items():
        errs[k] = errs.get(k, 0) + v
lat = reps[0]["latency_ms"]
print(f"onboarded {done}/{n} in {wall:.1f} s: {done / wall:.0f}/s; errors {errs or 'none'}")
print("latency ms (replica 0): p50 %.1f p95 %.1f p99 %.1f" % (lat["p50"], lat["p95"], lat["p99"]))
print(f"server CPU per onboarding: {cpu / max(done, 1) * 1e6:.0f} µs")
PY
for p in "${pids[@]}"; do grep VmHWM /proc/$p/status; done
"${pin[@]}" ./hallmark fleet ceiling --suite "$suite" --duration 5s
