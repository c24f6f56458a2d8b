#!/usr/bin/env python3
"""Drives a real Kafka client library against Strata's Kafka listener, for
crates/cli/tests/kafka_clients.rs. One process per role; results are JSON lines on stdout.

Usage: client.py LIB ROLE BOOTSTRAP ARGS...
  LIB  kafka-python | confluent
  admin    BOOTSTRAP TOPIC                 create, describe, alter a config, delete
  produce  BOOTSTRAP TOPIC N CODEC         idempotent acks=all producer of v0..v{N-1}
  verify   BOOTSTRAP TOPIC N               reads partition 0 from the start: each once, in order
  member   BOOTSTRAP TOPIC GROUP           a group member: prints {"p","o"} per record, commits
"""

import json
import sys
import time


def out(**kw):
    print(json.dumps(kw), flush=True)


# ---------------------------------------------------------------- kafka-python

def kp_admin(bs, topic):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic, ConfigResource, ConfigResourceType
    a = KafkaAdminClient(bootstrap_servers=bs, client_id="strata-kp-admin")
    a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])
    names = a.list_topics()
    described = a.describe_topics([topic])
    parts = len(described[0]["partitions"])
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "3600000"})])
    cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    text = str(cfg)
    a.delete_topics([topic])
    after = a.list_topics()
    out(listed=topic in names, partitions=parts, retention_set="3600000" in text,
        deleted=topic not in after)


def kp_produce(bs, topic, n, codec):
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bs, acks="all", enable_idempotence=True,
                      compression_type=None if codec == "none" else codec,
                      retries=2**31 - 1, delivery_timeout_ms=120000, request_timeout_ms=10000,
                      linger_ms=2, max_in_flight_requests_per_connection=5)
    futs = []
    for i in range(n):
        futs.append(p.send(topic, value=b"v%d" % i, partition=0))
        if i % 100 == 99:
            p.flush()
            out(progress=i + 1)
    p.flush()
    errors = 0
    for f in futs:
        try:
            f.get(60)
        except Exception as e:  # noqa: BLE001
            errors += 1
            if errors < 3:
                out(error=str(e))
    p.close()
    out(done=n, errors=errors)


def kp_verify(bs, topic, n):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=10000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    values = []
    for m in c:
        values.append(m.value.decode())
        if len(values) >= n:
            break
    # Anything past the n expected (a duplicate) would come now.
    for batch in c.poll(timeout_ms=300).values():
        values.extend(m.value.decode() for m in batch)
    c.close()
    report(values, n)


def kp_member(bs, topic, group):
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bs, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=6000,
                      heartbeat_interval_ms=1000, max_poll_records=20)
    assigned = None
    while True:
        batch = c.poll(timeout_ms=500)
        now = sorted(tp.partition for tp in c.assignment())
        if now != assigned:
            assigned = now
            out(assigned=now)
        for _, msgs in batch.items():
            for m in msgs:
                out(p=m.partition, o=m.offset)
        if batch:
            c.commit()
            out(committed=True)


# ---------------------------------------------------------------- confluent-kafka

def ck_admin(bs, topic):
    from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource
    a = AdminClient({"bootstrap.servers": bs})
    for f in a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)]).values():
        f.result()
    md = a.list_topics(timeout=10)
    listed = topic in md.topics
    parts = len(md.topics[topic].partitions) if listed else 0
    res = ConfigResource("topic", topic, set_config={"retention.ms": "3600000"})
    for f in a.alter_configs([res]).values():
        f.result()
    got = {}
    for f in a.describe_configs([ConfigResource("topic", topic)]).values():
        got = {k: v.value for k, v in f.result().items()}
    for f in a.delete_topics([topic]).values():
        f.result()
    deleted = False
    for _ in range(50):
        if topic not in a.list_topics(timeout=10).topics:
            deleted = True
            break
        time.sleep(0.1)
    out(listed=listed, partitions=parts, retention_set=got.get("retention.ms") == "3600000",
        deleted=deleted)


def ck_produce(bs, topic, n, codec):
    from confluent_kafka import Producer
    errors = []
    p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "acks": "all",
                  "compression.type": codec, "linger.ms": 2, "message.timeout.ms": 120000,
                  "socket.timeout.ms": 10000})

    def done(err, _msg):
        if err is not None:
            errors.append(str(err))

    for i in range(n):
        while True:
            try:
                p.produce(topic, value=b"v%d" % i, partition=0, on_delivery=done)
                break
            except BufferError:
                p.poll(0.1)
        if i % 100 == 99:
            p.flush(60)
            out(progress=i + 1)
    left = p.flush(120)
    out(done=n, errors=len(errors) + left, first_errors=errors[:3])


def ck_verify(bs, topic, n):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": bs, "group.id": "strata-verify", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values = []
    idle = time.time()
    # Until n came (and 300 ms more, for a duplicate past them), or 10 s without a record.
    while time.time() - idle < (0.3 if len(values) >= n else 10):
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            continue
        values.append(m.value().decode())
        idle = time.time()
    c.close()
    report(values, n)


def ck_member(bs, topic, group):
    from confluent_kafka import Consumer
    # The cooperative protocol (incremental rebalances), where kafka-python and kcat use
    # range and kafkajs roundrobin: the coordinator relays whatever the client assigns.
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 1000,
                  "partition.assignment.strategy": "cooperative-sticky"})
    c.subscribe([topic])
    assigned = None
    while True:
        msgs = c.consume(num_messages=20, timeout=0.5)
        now = sorted(tp.partition for tp in c.assignment())
        if now != assigned:
            assigned = now
            out(assigned=now)
        got = False
        for m in msgs:
            if m.error():
                continue
            out(p=m.partition(), o=m.offset())
            got = True
        if got:
            c.commit(asynchronous=False)
            out(committed=True)


# ---------------------------------------------------------------- shared

def report(values, n):
    want = ["v%d" % i for i in range(n)]
    out(count=len(values), exact=values == want,
        duplicates=len(values) - len(set(values)),
        missing=len(set(want) - set(values)),
        in_order=values == sorted(set(values), key=lambda v: int(v[1:])))


def main():
    lib, role, bs = sys.argv[1], sys.argv[2], sys.argv[3]
    args = sys.argv[4:]
    table = {
        ("kafka-python", "admin"): lambda: kp_admin(bs, args[0]),
        ("kafka-python", "produce"): lambda: kp_produce(bs, args[0], int(args[1]), args[2]),
        ("kafka-python", "verify"): lambda: kp_verify(bs, args[0], int(args[1])),
        ("kafka-python", "member"): lambda: kp_member(bs, args[0], args[1]),
        ("confluent", "admin"): lambda: ck_admin(bs, args[0]),
        ("confluent", "produce"): lambda: ck_produce(bs, args[0], int(args[1]), args[2]),
        ("confluent", "verify"): lambda: ck_verify(bs, args[0], int(args[1])),
        ("confluent", "member"): lambda: ck_member(bs, args[0], args[1]),
    }
    table[(lib, role)]()


if __name__ == "__main__":
    main()
