#!/usr/bin/env bash
# Runs `strata bench` against a 3-node cluster of separate `strata node` processes on this
# machine (release build, default Raft timing, data under target/bench-tmp on the real disk).
#
#   benches/scripts/cluster_bench.sh                 # the table of docs/benchmarks.md
#   benches/scripts/cluster_bench.sh produce --records 20000 --producers 4 --partitions 4
#                                                    # one custom bench run
#
# Results (JSON, one file per run) go to target/bench-results/.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p strata-cli
BIN=$PWD/target/release/strata
ROOT=$PWD/target/bench-tmp/cluster-$$
OUT=$PWD/target/bench-results
mkdir -p "$ROOT" "$OUT"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
declare -a PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for i in 1 2 3; do cp "$ROOT/n$i.log" "$OUT/node-$i.log" 2>/dev/null || true; done
  rm -rf "$ROOT"
}
trap cleanup EXIT
declare -a CP PP HP
for i in 1 2 3; do CP[$i]=$(free_port); PP[$i]=$(free_port); HP[$i]=$(free_port); done
INITIAL="1@127.0.0.1:${PP[1]},2@127.0.0.1:${PP[2]},3@127.0.0.1:${PP[3]}"
for i in 1 2 3; do
  RUST_LOG=warn,strata_node=info,openraft::engine=info "$BIN" node --node-id "$i" --data-dir "$ROOT/n$i" \
    --client-addr "127.0.0.1:${CP[$i]}" --peer-addr "127.0.0.1:${PP[$i]}" \
    --http-addr "127.0.0.1:${HP[$i]}" --initial-cluster "$INITIAL" >"$ROOT/n$i.log" 2>&1 &
  PIDS+=($!)
done
export STRATA_BROKERS="127.0.0.1:${CP[1]},127.0.0.1:${CP[2]},127.0.0.1:${CP[3]}"
healthy=0
for _ in $(seq 1 300); do
  if "$BIN" cluster status >/dev/null 2>&1; then healthy=1; break; fi
  sleep 0.1
done
[ "$healthy" = 1 ] || { echo "the cluster did not become healthy" >&2; exit 1; }

run() {
  local name=$1; shift
  echo "== strata bench $*" >&2
  "$BIN" -o json bench "$@" --json-out "$OUT/$name.json" >/dev/null
  cat "$OUT/$name.json"; echo
}

# Elections won during the run, by cause, summed over the nodes (strata_elections_won_total).
elections() {
  for i in 1 2 3; do
    python3 -c 'import sys,urllib.request; print(urllib.request.urlopen("http://127.0.0.1:"+sys.argv[1]+"/metrics").read().decode())' "${HP[$i]}"
  done | awk '/^strata_elections_won_total/ { match($0, /cause="[a-z_]*"/); c = substr($0, RSTART+7, RLENGTH-8); n[c] += $NF }
              END { printf "elections won during the run:"; for (c in n) printf " %s=%d", c, n[c]; print "" }' \
    | tee "$OUT/elections.txt" >&2
}

if [ $# -gt 0 ]; then
  run custom "$@"
  elections
  exit 0
fi
for parts in 1 16; do
  for prods in 1 16; do
    run "produce-p${parts}-k${prods}" produce --records 200000 --record-size 1024 \
      --producers "$prods" --partitions "$parts" --acks all --topic "bench-p${parts}-k${prods}"
  done
done
run replay consume --records 200000 --record-size 1024 --partitions 16 --topic bench-p16-k16
run e2e e2e --records 50000 --record-size 1024 --partitions 16 --producers 4 --rate 5000 \
  --linger-ms 1 --acks all
elections
