#!/usr/bin/env bash
# Runs `strata bench` against a 3-node cluster of separate `strata node` processes on this
# machine (release build, default Raft timing, data under target/bench-tmp on the real disk).
# STRATA_BENCH_NODES=1 starts a single node instead (topics then get replication factor 1).
#
#   benches/scripts/cluster_bench.sh                 # the table of docs/benchmarks.md
#   benches/scripts/cluster_bench.sh produce --records 20000 --producers 4 --partitions 4
#                                                    # one custom bench run
#
# Results (JSON, one file per run) go to target/bench-results/.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${STRATA_BENCH_NODES:-3}
# STRATA_BENCH_BIN=<path>: run that strata binary instead of building this tree's (to compare
# two builds, alternating, on the same machine).
if [ -n "${STRATA_BENCH_BIN:-}" ]; then
  BIN=$STRATA_BENCH_BIN
else
  cargo build --release -q -p strata-cli
  BIN=$PWD/target/release/strata
fi
ROOT=$PWD/target/bench-tmp/cluster-$$
OUT=$PWD/target/bench-results
mkdir -p "$ROOT" "$OUT"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
declare -a PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for i in $(seq 1 "$NODES"); do cp "$ROOT/n$i.log" "$OUT/node-$i.log" 2>/dev/null || true; done
  rm -rf "$ROOT"
}
trap cleanup EXIT
declare -a CP PP HP
for i in $(seq 1 "$NODES"); do CP[$i]=$(free_port); PP[$i]=$(free_port); HP[$i]=$(free_port); done
INITIAL=$(for i in $(seq 1 "$NODES"); do printf '%s@127.0.0.1:%s\n' "$i" "${PP[$i]}"; done | paste -sd, -)
for i in $(seq 1 "$NODES"); do
  RUST_LOG=warn,strata_node=info,openraft::engine=info "$BIN" node --node-id "$i" --data-dir "$ROOT/n$i" \
    --client-addr "127.0.0.1:${CP[$i]}" --peer-addr "127.0.0.1:${PP[$i]}" \
    --http-addr "127.0.0.1:${HP[$i]}" --initial-cluster "$INITIAL" >"$ROOT/n$i.log" 2>&1 &
  PIDS+=($!)
done
STRATA_BROKERS=$(for i in $(seq 1 "$NODES"); do printf '127.0.0.1:%s\n' "${CP[$i]}"; done | paste -sd, -)
export STRATA_BROKERS
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

# fdatasync latency of the data directory's disk right now: 500 x (4 KiB pwrite + fdatasync).
fsync_probe() {
  python3 - "$ROOT" <<'PY' >&2
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
block, lat = b"\0" * 4096, []
for i in range(500):
    os.pwrite(fd, block, (i % 256) * 4096)
    t = time.perf_counter(); os.fdatasync(fd); lat.append((time.perf_counter() - t) * 1e3)
os.close(fd); os.unlink(path); lat.sort()
print("fdatasync probe: p50 %.3f ms, p99 %.3f ms" % (lat[len(lat) // 2], lat[int(len(lat) * 0.99)]))
PY
}

# How fast fresh page-cache pages take their first write right now: 64 MiB written to a new
# file. A VM whose host backs guest memory lazily (and takes freed memory back, as free page
# reporting does) pays a fault to the host on each page's first touch: this project's test VM
# measured about 90 MB/s here against several GB/s for pages already backed. Every record a
# node appends lands in fresh pages, so this bounds the data-heavy lines on such a machine.
memory_probe() {
  python3 - "$ROOT" <<'PY' >&2
import os, sys, time
path = os.path.join(sys.argv[1], "memory-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
chunk = b"\1" * (1 << 20)
t = time.perf_counter()
for i in range(64):
    os.write(fd, chunk)
dt = time.perf_counter() - t
os.close(fd); os.unlink(path)
print("page-cache first-write probe: %.0f MB/s" % (64 * 1.048576 / dt))
PY
}

# Elections won during the run, by cause, summed over the nodes (strata_elections_won_total).
elections() {
  for i in $(seq 1 "$NODES"); do
    python3 -c 'import sys,urllib.request; print(urllib.request.urlopen("http://127.0.0.1:"+sys.argv[1]+"/metrics").read().decode())' "${HP[$i]}"
  done | awk '/^strata_elections_won_total/ { match($0, /cause="[a-z_]*"/); c = substr($0, RSTART+7, RLENGTH-8); n[c] += $NF }
              END { printf "elections won during the run:"; for (c in n) printf " %s=%d", c, n[c]; print "" }' \
    | tee "$OUT/elections.txt" >&2
}

if [ $# -gt 0 ]; then
  memory_probe
  fsync_probe
  run custom "$@"
  elections
  # STRATA_BENCH_METRICS=1: keep each node's /metrics after the run (target/bench-results/).
  if [ "${STRATA_BENCH_METRICS:-0}" = 1 ]; then
    for i in $(seq 1 "$NODES"); do
      python3 -c 'import sys,urllib.request; print(urllib.request.urlopen("http://127.0.0.1:"+sys.argv[1]+"/metrics").read().decode())' "${HP[$i]}" >"$OUT/metrics-node-$i.txt"
    done
  fi
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
# Issue 13's workloads, each after a probe of the disk's fdatasync latency (the first also
# after the page-cache probe).
memory_probe
fsync_probe
run p1-k4-w32 produce --records 100000 --record-size 1024 --producers 4 --in-flight 32 \
  --linger-ms 0 --partitions 1 --acks all --topic bench-p1-w32
fsync_probe
run p16-k256-w1 produce --records 100000 --record-size 1024 --producers 256 --in-flight 1 \
  --linger-ms 0 --partitions 16 --acks all --topic bench-p16-w1
fsync_probe
run e2e-p1 e2e --records 25000 --record-size 1024 --partitions 1 --producers 4 --rate 5000 \
  --linger-ms 0 --acks all
elections
