#!/usr/bin/env bash
# Reproduces the onboarding figures of docs/performance.md: starts
# `hallmark serve` on SQLite or PostgreSQL, registers a station and a
# product, imports a fleet manifest, measures the crypto ceiling and the
# server-side crypto floor (`hallmark fleet ceiling`), then onboards the
# fleet with `hallmark fleet onboard` once per connections mode — fresh
# (a new TLS 1.3 connection per device, as devices do) and keep-alive
# (connections shared across devices, as a gateway does), each on its own
# share of the fleet — and prints a table: throughput, latency, the
# server's CPU per onboarding (read from its /metrics; with PostgreSQL,
# PostgreSQL's own processes added), the load generator's, the floor and
# the ratio of the two, and the server's peak RSS.
#
#   scripts/perf-onboard.sh [-s SUITE] [-n DEVICES] [-o ONBOARD] [-d sqlite|postgres://…]
#                           [-m MODES] [-C DURATION] [-c CONCURRENCY] [-r REPLICAS] [-p CPUS] [-k] [-H]
#
#   -s  enrolment key suite of the fleet (ecdsa-p256, ml-dsa-65, …)
#   -n  devices (the manifest is generated once into the work directory)
#   -o  how many of them to onboard (default all), split between the modes
#   -d  sqlite (default) or a PostgreSQL URL (its database is emptied
#       first; it must run on this machine for its CPU to be counted)
#   -m  connections modes, comma-separated (default fresh,keep-alive)
#   -C  how long each phase of the ceiling runs (default 5s)
#   -c  onboardings in flight per replica
#   -r  replicas (PostgreSQL only): the fleet is split across them
#   -p  CPU list for taskset, e.g. 0 or 0,1 (both server and client)
#   -k  keep the registry: skip the import and onboard again (restart test)
#   -H  keep the CA's keys and the TLS key in a SoftHSM2 token the script
#       makes (Debian package softhsm2), through --ca-key-uri pkcs11:…
#
# Needs Go, and psql for -d postgres://…; nothing else beyond a Debian
# base system (bash, awk, sed, taskset).
#
# The servers take any other setting from HALLMARK_* variables, e.g.
# HALLMARK_SQLITE_SYNCHRONOUS=normal for the durability comparison of
# docs/performance.md.
#
# Work files live in ${HALLMARK_PERF_DIR:-/tmp/hallmark-perf}. With
# HALLMARK_PERF_RESTART=1 the servers restart after the import, so the
# peak RSS reported at the end is that of serving, not of importing.
set -euo pipefail
suite=ecdsa-p256 n=20000 onboard="" db=sqlite conc=16 replicas=1 cpus="" keep="" hsm="" modes=fresh,keep-alive ceiling=5s
while getopts "s:n:o:d:m:C:c:r:p:kH" o; do
  case $o in
    s) suite=$OPTARG ;; n) n=$OPTARG ;; o) onboard=$OPTARG ;; d) db=$OPTARG ;; m) modes=$OPTARG ;; C) ceiling=$OPTARG ;;
    c) conc=$OPTARG ;; r) replicas=$OPTARG ;; p) cpus=$OPTARG ;; k) keep=1 ;; H) hsm=1 ;;
    *) sed -n '2,38p' "$0"; exit 2 ;;
  esac
done
IFS=, read -r -a modelist <<< "$modes"
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
  echo "import: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; server peak RSS so far:"
  for p in "${pids[@]}"; do grep VmHWM /proc/$p/status; done
  if [ "${HALLMARK_PERF_RESTART:-}" = 1 ]; then
    # Measure the load's memory apart from the import's: restart the servers.
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    start_servers
  fi
fi
# PostgreSQL's own CPU counts as the server's: its postmaster (the
# parent of its checkpointer) and every process under it.
pgflag=()
if [ "$db" != sqlite ]; then
  ckpt=$(psql "$db" -Atqc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
  postmaster=$(awk '{ print $4 }' "/proc/$ckpt/stat" 2>/dev/null || true)
  if [ -n "$postmaster" ]; then
    pgflag=(--extra-cpu-pid "$postmaster")
  else
    echo "perf-onboard: PostgreSQL is not on this machine: its CPU is not counted" >&2
  fi
fi

# The ceiling and the floor first, while nothing else runs.
"${pin[@]}" ./hallmark fleet ceiling --suite "$suite" --duration "$ceiling" --json > ceiling.json
jget() { sed -n "s/^ *\"$2\": \([^,{]*\),\{0,1\}\$/\1/p" "$1" | head -1; }
floor_fresh=$(jget ceiling.json floor_fresh_ms) floor_keep=$(jget ceiling.json floor_keep_alive_ms)

per=$((onboard / ${#modelist[@]} / replicas))
first=0
rows=()
for mode in "${modelist[@]}"; do
  floor=$floor_fresh
  [ "$mode" = keep-alive ] && floor=$floor_keep
  fleetpids=()
  for i in $(seq 0 $((replicas - 1))); do
    "${pin[@]}" ./hallmark fleet onboard --server "${urls[$i]}" --seed-file fleet.seed --suite "$suite" \
      --from $((first + i * per)) --devices "$per" --concurrency "$conc" --connections "$mode" --verify=false \
      "${pgflag[@]}" --crypto-floor "${floor}ms" --json > "fleet-$mode-$i.json" &
    fleetpids+=($!)
  done
  wait "${fleetpids[@]}"
  first=$((first + replicas * per))
  # Sum over replicas (each load generator reads its own server's CPU;
  # PostgreSQL's, shared, is counted by each: taken once), slowest wall.
  rows+=("$(for i in $(seq 0 $((replicas - 1))); do
      f=fleet-$mode-$i.json
      echo "$(jget "$f" onboarded) $(jget "$f" wall_seconds) $(jget "$f" p50) $(jget "$f" p99) $(jget "$f" server_ms)" \
        "$(jget "$f" extra_ms) $(jget "$f" load_generator_ms) $(jget "$f" handshakes) $(jget "$f" server_onboarded) $(jget "$f" failed)"
    done | awk -v mode="$mode" -v floor="$floor" '
      { done += $1; if ($2 > wall) wall = $2; if (NR == 1) { p50 = $3; p99 = $4; extra = $6 }
        server += $5; gen += $7; hs += $8; counted += $9; failed += $10 }
      END { cpu = (server + extra) / (done ? done : 1)
            printf "%-10s %7d %7d %9.0f %6.1f / %-6.1f %10.3f %10.3f %9.3f %9.3f %7.2f %9d\n", mode, done, counted, done / wall,
              p50, p99, server / (done ? done : 1), cpu, gen / (done ? done : 1), floor, cpu / floor, hs
            if (failed) printf "%s: %d onboardings failed\n", mode, failed > "/dev/stderr" }')")
done

echo
echo "$suite devices, store ${db%%\?*}, $conc in flight per replica, $replicas replica(s), chains not verified; CPU in ms per onboarding"
if [ ${#pgflag[@]} -gt 0 ]; then
  echo "(server+PG: the server's CPU plus PostgreSQL's processes, postmaster $postmaster; ratio = server+PG / floor)"
else
  echo "(ratio = server+PG / floor; no PostgreSQL here, so server+PG is the server alone)"
fi
printf "%-10s %7s %7s %9s %15s %10s %10s %9s %9s %7s %9s\n" mode onboard counted "onb/s" "p50 / p99 ms" server "server+PG" loadgen floor ratio handshakes
printf '%s\n' "${rows[@]}"
printf 'ceiling (%s per phase, %s workers, same run): server crypto alone %.0f/s, device %.0f/s, both sharing the CPUs %.0f/s\n' \
  "$ceiling" "$(jget ceiling.json workers)" "$(jget ceiling.json server_onboardings_per_second)" \
  "$(jget ceiling.json client_onboardings_per_second)" "$(jget ceiling.json shared_onboardings_per_second)"
printf 'server CPU: onboarding crypto %.3f ms, TLS 1.3 handshake (%s) %.3f ms (less %.3f ms of waiting); floor: fresh %.3f ms, keep-alive %.3f ms\n' \
  "$(jget ceiling.json server_cpu_ms)" "$(jget ceiling.json handshake_key_exchange | tr -d '"')" "$(jget ceiling.json handshake_cpu_ms)" \
  "$(jget ceiling.json handshake_waits_cpu_ms)" "$floor_fresh" "$floor_keep"
for p in "${pids[@]}"; do grep VmHWM /proc/$p/status; done
