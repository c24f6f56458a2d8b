// kafkajs in the roles of client.py, for crates/cli/tests/kafka_clients.rs. Results are
// JSON lines on stdout.
//
// Usage: node client.js ROLE BOOTSTRAP ARGS...
//   admin    BOOTSTRAP TOPIC                create, describe, alter a config, delete
//   produce  BOOTSTRAP TOPIC N CODEC        idempotent producer of v0..v{N-1} to partition 0
//   verify   BOOTSTRAP TOPIC N              reads partition 0 from the start: each once, in order
//   member   BOOTSTRAP TOPIC GROUP          a group member: prints {"p","o"} per record
'use strict';
const { Kafka, CompressionTypes, CompressionCodecs, logLevel, ConfigResourceTypes } = require('kafkajs');
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy');

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const [role, bs, ...args] = process.argv.slice(2);
const kafka = new Kafka({
  clientId: 'strata-kafkajs',
  brokers: bs.split(','),
  logLevel: logLevel.ERROR,
  retry: { retries: 30, initialRetryTime: 100, maxRetryTime: 2000 },
});
const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy };

async function admin(topic) {
  const a = kafka.admin();
  await a.connect();
  await a.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 3 }], waitForLeaders: true });
  const listed = (await a.listTopics()).includes(topic);
  const md = await a.fetchTopicMetadata({ topics: [topic] });
  await a.alterConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] });
  const cfg = await a.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }], includeSynonyms: false });
  const entry = cfg.resources[0].configEntries.find((e) => e.configName === 'retention.ms');
  await a.deleteTopics({ topics: [topic] });
  let deleted = false;
  for (let i = 0; i < 50 && !deleted; i++) {
    deleted = !(await a.listTopics()).includes(topic);
    if (!deleted) await new Promise((r) => setTimeout(r, 100));
  }
  await a.disconnect();
  out({ listed, partitions: md.topics[0].partitions.length, retention_set: !!entry && entry.configValue === '3600000', deleted });
}

async function produce(topic, n, codec) {
  const p = kafka.producer({ idempotent: true, maxInFlightRequests: 5 });
  await p.connect();
  let errors = 0;
  for (let start = 0; start < n; start += 100) {
    const messages = [];
    for (let i = start; i < Math.min(n, start + 100); i++) messages.push({ value: 'v' + i, partition: 0 });
    try {
      await p.send({ topic, acks: -1, compression: codecs[codec], messages });
    } catch (e) {
      errors += 1;
      out({ error: String(e) });
    }
    out({ progress: Math.min(n, start + 100) });
  }
  await p.disconnect();
  out({ done: n, errors });
}

async function verify(topic, n) {
  const c = kafka.consumer({ groupId: 'strata-verify-' + process.pid });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  const values = [];
  let last = Date.now();
  await c.run({ eachMessage: async ({ message }) => { values.push(message.value.toString()); last = Date.now(); } });
  // Until n came (and 300 ms more, for a duplicate past them), or 10 s without a record.
  while (Date.now() - last < (values.length >= n ? 300 : 10000)) await new Promise((r) => setTimeout(r, 50));
  await c.disconnect();
  const want = Array.from({ length: n }, (_, i) => 'v' + i);
  out({ count: values.length, exact: JSON.stringify(values) === JSON.stringify(want) });
}

async function member(topic, group) {
  const c = kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 1000 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  await c.run({
    autoCommitInterval: 500,
    eachMessage: async ({ partition, message }) => out({ p: partition, o: Number(message.offset) }),
  });
}

const roles = {
  admin: () => admin(args[0]),
  produce: () => produce(args[0], Number(args[1]), args[2]),
  verify: () => verify(args[0], Number(args[1])),
  member: () => member(args[0], args[1]),
};
roles[role]().catch((e) => { out({ fatal: String(e) }); process.exit(1); });
