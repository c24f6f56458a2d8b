//! Choosing a partition for a record: an explicit partition, else the key's murmur2 hash as
//! Kafka's default partitioner computes it (so a key lands on the partition a Kafka producer
//! would pick for the same partition count), else a sticky round-robin that moves on after
//! each batch's worth of bytes.

use std::collections::HashMap;

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): MurmurHash2, seed
/// `0x9747b28c`, little-endian 4-byte blocks.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives `key` among `partitions`:
/// `toPositive(murmur2(key)) % partitions`.
///
/// # Panics
/// If `partitions` is 0 (a topic has at least one partition).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

/// Sticky round-robin for records without key or partition (as Kafka's KIP-794): every record
/// of a topic goes to one partition until a batch's worth of bytes went there, then to the
/// next. Records are batched well, and partitions share the load evenly over time.
#[derive(Debug, Default)]
pub(crate) struct Sticky {
    topics: HashMap<String, StickyTopic>,
}

#[derive(Debug)]
struct StickyTopic {
    partition: u32,
    bytes: usize,
}

impl Sticky {
    /// The partition for a record of `size` bytes of `topic`, which has `partitions`.
    pub(crate) fn partition(
        &mut self,
        topic: &str,
        partitions: u32,
        size: usize,
        batch_bytes: usize,
    ) -> u32 {
        assert!(partitions > 0, "a topic has at least one partition");
        let state = match self.topics.get_mut(topic) {
            Some(state) => state,
            None => self.topics.entry(topic.to_string()).or_insert(StickyTopic {
                partition: rand::random_range(0..partitions),
                bytes: 0,
            }),
        };
        if state.bytes >= batch_bytes {
            state.partition += 1;
            state.bytes = 0;
        }
        // The partition count may have changed (partitions added).
        state.partition %= partitions;
        state.bytes += size;
        state.partition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, hash) in cases {
            assert_eq!(murmur2(key), hash, "{}", String::from_utf8_lossy(key));
        }
        // toPositive(-790332482) = 1357151166; % 50 = 16.
        assert_eq!(partition_for_key(b"foobar", 50), 16);
    }

    #[test]
    fn sticky_moves_on_after_a_batch() {
        let mut sticky = Sticky::default();
        let first = sticky.partition("t", 4, 100, 250);
        assert_eq!(sticky.partition("t", 4, 100, 250), first);
        assert_eq!(sticky.partition("t", 4, 100, 250), first);
        let second = sticky.partition("t", 4, 100, 250);
        assert_eq!(second, (first + 1) % 4);
        // Every partition gets its turn.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..16 {
            seen.insert(sticky.partition("t", 4, 300, 250));
        }
        assert_eq!(seen.len(), 4);
    }
}
