#!/usr/bin/env python3
"""Produce throughput and acknowledgement latency through the Kafka listener, in the manner of
kafka-producer-perf-test, with confluent-kafka (librdkafka). Run it beside
`strata bench produce` against the same cluster (docs/benchmarks.md has the commands).

Usage: kafka_bench.py BOOTSTRAP TOPIC [--records N] [--record-size B] [--producers P]
                      [--linger-ms L] [--compression C]

Each producer process sends N/P records of B random bytes with acks=all and idempotence, and
times each record from produce() to its delivery report. Prints one JSON line: records/s,
MiB/s, and the latency p50/p99/max in ms over every record.
"""

import argparse
import json
import multiprocessing as mp
import os
import time


def one(bootstrap, topic, n, size, linger, compression, q):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": linger, "compression.type": compression,
                  "batch.size": 256 << 10, "queue.buffering.max.kbytes": 64 << 10})
    payload = os.urandom(size)
    lat = []
    errors = [0]

    def done(err, _msg, t0):
        if err is not None:
            errors[0] += 1
        lat.append(time.perf_counter() - t0)

    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        while True:
            try:
                p.produce(topic, payload, on_delivery=lambda e, m, t0=t0: done(e, m, t0))
                break
            except BufferError:
                p.poll(0.001)
        p.poll(0)
    p.flush(120)
    q.put((start, time.perf_counter(), lat, errors[0]))


def main():
    a = argparse.ArgumentParser()
    a.add_argument("bootstrap")
    a.add_argument("topic")
    a.add_argument("--records", type=int, default=200_000)
    a.add_argument("--record-size", type=int, default=1024)
    a.add_argument("--producers", type=int, default=4)
    a.add_argument("--linger-ms", type=int, default=5)
    a.add_argument("--compression", default="none")
    args = a.parse_args()
    q = mp.Queue()
    per = args.records // args.producers
    procs = [mp.Process(target=one, args=(args.bootstrap, args.topic, per, args.record_size,
                                          args.linger_ms, args.compression, q))
             for _ in range(args.producers)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    errors = sum(r[3] for r in results)
    n = per * args.producers
    secs = end - start
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print(json.dumps({
        "records": n, "errors": errors, "seconds": round(secs, 2),
        "records_per_s": round(n / secs), "mib_per_s": round(n * args.record_size / secs / (1 << 20), 1),
        "p50_ms": round(pick(0.50), 2), "p99_ms": round(pick(0.99), 2), "max_ms": round(lat[-1] * 1000, 2),
    }))


if __name__ == "__main__":
    main()
