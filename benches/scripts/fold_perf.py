#!/usr/bin/env python3
"""Folds `perf script` output (recorded with -g) into stacks, and sums samples by component.

    perf script -i perf.data | benches/scripts/fold_perf.py folded.txt [--pid N] [--svg out.svg]

`--pid N` keeps the samples of one process (for a system-wide `perf record -a`); `--svg`
also draws the flame graph itself (an SVG with a tooltip per frame, no other tool needed).

Writes one line per distinct stack (root first, frames joined by ';', then the sample count:
the input format of flamegraph.pl, inferno-flamegraph and speedscope) to the named file, and
prints the share of samples in each component of the produce path. A sample counts for the
first component matched walking from the leaf toward the root, so a component's share is its
own work and the library code it calls (allocation, copies, system calls).
"""
import argparse
import collections
import html
import re
import sys
import zlib

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


def svg(folded: collections.Counter, path: str, title: str) -> None:
    """Draws `folded` as a flame graph: root at the bottom, one row per stack depth, each
    frame as wide as its share of the samples; frames under 0.05% are left out."""
    total = sum(folded.values())
    tree: dict = {}
    for stack, n in folded.items():
        node = tree
        for frame in stack.split(";"):
            child = node.setdefault(frame, [0, {}])
            child[0] += n
            node = child[1]
    width, row, pad = 1200.0, 16, 30
    rects: list[tuple[float, int, float, str, int]] = []
    depth_max = 0

    def walk(children: dict, x: float, depth: int) -> None:
        nonlocal depth_max
        for name, (n, grand) in sorted(children.items()):
            w = width * n / total
            if w >= width * 0.002:
                rects.append((x, depth, w, name, n))
                depth_max = max(depth_max, depth)
                walk(grand, x, depth + 1)
            x += w

    walk(tree, 0.0, 0)
    height = (depth_max + 1) * row + 2 * pad
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{int(width) + 20}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<text x="10" y="18" font-size="14">{html.escape(title)} ({total} samples)</text>',
    ]
    for x, depth, w, name, n in rects:
        y = height - pad - (depth + 1) * row
        hue = zlib.crc32(name.split("::")[0].encode()) % 60
        name = name if len(name) <= 160 else name[:157] + "..."
        label = html.escape(name)
        out.append(
            f'<g><title>{label} ({n} samples, {100 * n / total:.2f}%)</title>'
            f'<rect x="{10 + x:.1f}" y="{y}" width="{max(w - 0.5, 0.1):.1f}" height="{row - 1}" '
            f'fill="hsl({hue},80%,{55 + hue % 20}%)"/>'
        )
        chars = int(w / 6.6)
        if chars >= 3:
            text = name if len(name) <= chars else name[: chars - 2] + ".."
            out.append(f'<text x="{12 + x:.1f}" y="{y + row - 4}">{html.escape(text)}</text>')
        out.append("</g>")
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folded", help="where to write the folded stacks")
    ap.add_argument("--pid", type=int, help="keep only this process's samples")
    ap.add_argument("--svg", help="also draw the flame graph into this SVG file")
    ap.add_argument("--title", default="Flame graph", help="the SVG's title")
    args = ap.parse_args()
    folded = collections.Counter()
    stack: list[str] = []
    keep = True
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            if stack and keep:
                folded[";".join(reversed(stack))] += 1
            stack = []
            continue
        if line[0] not in " \t":
            # The sample's header line: "comm pid/tid ..." or "comm pid ...".
            m = re.match(r"\s*\S.*?\s(\d+)(?:/\d+)?\s", line + " ")
            keep = args.pid is None or (m is not None and int(m.group(1)) == args.pid)
            continue
        parts = line.strip().split(" ", 1)
        if len(parts) == 2:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1].rsplit(" (", 1)[0])
            stack.append(sym)
    if stack and keep:
        folded[";".join(reversed(stack))] += 1
    if args.svg:
        svg(folded, args.svg, args.title)
    with open(args.folded, "w") as out:
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
