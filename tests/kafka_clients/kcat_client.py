#!/usr/bin/env python3
"""kcat (librdkafka's command-line client) in the roles of client.py, for
crates/cli/tests/kafka_clients.rs. Results are JSON lines on stdout.

Usage: kcat_client.py ROLE BOOTSTRAP ARGS...
  metadata BOOTSTRAP TOPIC          kcat -L -J: brokers and the topic's partitions
  produce  BOOTSTRAP TOPIC N CODEC  v0..v{N-1} to partition 0, idempotent, acks=all, in runs of 500
  verify   BOOTSTRAP TOPIC N        kcat -C from the start: each once, in order
  member   BOOTSTRAP TOPIC GROUP    kcat -G (balanced consumer, auto-commit): {"p","o"} lines
"""

import json
import os
import subprocess
import sys


def out(**kw):
    print(json.dumps(kw), flush=True)


def main():
    role, bs = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if role == "metadata":
        r = subprocess.run(["kcat", "-b", bs, "-L", "-J", "-t", args[0]], capture_output=True,
                           text=True, timeout=60, check=True)
        md = json.loads(r.stdout)
        topic = next((t for t in md["topics"] if t["topic"] == args[0]), None)
        out(brokers=len(md["brokers"]),
            partitions=len(topic["partitions"]) if topic else 0,
            leaders=all(p["leader"] > 0 for p in topic["partitions"]) if topic else False)
    elif role == "produce":
        topic, n, codec = args[0], int(args[1]), args[2]
        errors = 0
        for start in range(0, n, 500):
            lines = "".join("v%d\n" % i for i in range(start, min(n, start + 500)))
            r = subprocess.run(["kcat", "-b", bs, "-P", "-t", topic, "-p", "0", "-z", codec,
                                "-X", "enable.idempotence=true", "-X", "acks=all",
                                "-X", "message.timeout.ms=120000"],
                               input=lines, text=True, capture_output=True, timeout=180)
            if r.returncode != 0:
                errors += 1
                out(error=r.stderr[-500:])
            out(progress=min(n, start + 500))
        out(done=n, errors=errors)
    elif role == "verify":
        topic, n = args[0], int(args[1])
        r = subprocess.run(["kcat", "-b", bs, "-C", "-t", topic, "-p", "0", "-o", "beginning",
                            "-e", "-q", "-f", "%s\n"], capture_output=True, text=True, timeout=120)
        values = r.stdout.split("\n")[:-1]
        want = ["v%d" % i for i in range(n)]
        out(count=len(values), exact=values == want)
    elif role == "member":
        topic, group = args[0], args[1]
        os.execvp("kcat", ["kcat", "-b", bs, "-G", group, "-q", "-u",
                           "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000",
                           "-X", "heartbeat.interval.ms=1000", "-X", "auto.commit.interval.ms=500",
                           "-f", '{"p":%p,"o":%o}\n', topic])
    else:
        raise SystemExit("unknown role " + role)


if __name__ == "__main__":
    main()
