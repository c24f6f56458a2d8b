#!/usr/bin/env python3
"""Folds `perf script` output (recorded with -g) into stacks, and sums samples by component.

    perf script -i perf.data | benches/scripts/fold_perf.py folded.txt

Writes one line per distinct stack (root first, frames joined by ';', then the sample count:
the input format of flamegraph.pl, inferno-flamegraph and speedscope) to the named file, and
prints the share of samples in each component of the produce path. A sample counts for the
first component matched walking from the leaf toward the root, so a component's share is its
own work and the library code it calls (allocation, copies, system calls).
"""
import collections
import re
import sys

# (component, pattern on a frame's symbol), tried leaf to root; the first match wins.
COMPONENTS = [
    ("fdatasync (flusher)", r"strata_log::flusher"),
    ("log append (pwritev, framing, zeros)", r"strata_log::append|strata_log::disk::pwritev"),
    ("log reads (replication, fetch)", r"strata_log::read"),
    ("record batch checks (CRC32C)", r"strata_record::"),
    ("raft storage glue (store, state machine)", r"strata_raft::store|strata_raft::state_machine"),
    ("raft transport (peer gRPC, codec)", r"strata_raft::transport"),
    ("partition write path (idempotence, propose)", r"strata_raft::partition"),
    ("openraft replication tasks", r"openraft::replication"),
    ("openraft core (engine, metrics)", r"openraft::"),
    ("broker and client gRPC service", r"strata_node::|strata_broker::"),
    ("HTTP/2 and gRPC framing (h2, hyper, tonic)", r"^h2::|hyper::|tonic::|tower::"),
    ("tokio I/O driver (epoll, socket readiness)", r"tokio::runtime::io|tokio::runtime::driver|mio::"),
    ("tokio workers parking (futex sleep and wake-up)", r"park_internal|park_condvar|park_timeout|Parker|Unparker|unpark"),
    ("tokio scheduling and task wake-ups", r"tokio::"),
]


def main() -> None:
    folded = collections.Counter()
    stack: list[str] = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                folded[";".join(reversed(stack))] += 1
            stack = []
            continue
        if line[0] not in " \t":
            continue  # the sample's header line
        parts = line.strip().split(" ", 1)
        if len(parts) == 2:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1].rsplit(" (", 1)[0])
            stack.append(sym)
    if stack:
        folded[";".join(reversed(stack))] += 1
    with open(sys.argv[1], "w") as out:
        for s, n in folded.most_common():
            out.write(f"{s} {n}\n")
    by = collections.Counter()
    total = sum(folded.values())
    compiled = [(c, re.compile(p)) for c, p in COMPONENTS]
    for s, n in folded.items():
        frames = s.split(";")
        comp = None
        for f in reversed(frames):
            for c, p in compiled:
                if p.search(f):
                    comp = c
                    break
            if comp:
                break
        if comp is None:
            leaf = frames[-1] if frames else ""
            comp = "kernel (scheduling, network, other)" if "[k]" in s or "kernel" in leaf else "other"
        by[comp] += n
    print(f"{total} samples")
    for c, n in by.most_common():
        print(f"| {c} | {100 * n / total:.1f}% |")


if __name__ == "__main__":
    main()
