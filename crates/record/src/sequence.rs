//! Producer sequence arithmetic, as Kafka defines it: a batch's records carry consecutive
//! sequence numbers from its `base_sequence`, and sequences wrap from `i32::MAX` to 0.

/// The sequence `n` records after `s` (wrapping after `i32::MAX`). `n` may be 0; `s` = -1
/// (no sequence yet) advances from before 0.
pub fn advance(s: i32, n: u64) -> i32 {
    let modulus = i64::from(i32::MAX) + 1;
    let n = (n % modulus as u64) as i64;
    (i64::from(s) + n).rem_euclid(modulus) as i32
}

/// The sequence after `s`.
pub fn next_after(s: i32) -> i32 {
    advance(s, 1)
}

/// The last sequence of a batch of `count` records (at least 1) starting at `first`.
pub fn last_of(first: i32, count: u32) -> i32 {
    advance(first, u64::from(count.max(1)) - 1)
}

/// How far ahead of the expected sequence a batch may be, in records, and still count as
/// "ahead" rather than "behind" (a producer keeps at most 5 batches in flight).
pub const AHEAD_MAX: i64 = 5 * (1 << 20);

/// Whether sequence `got` is ahead of `expected` (by less than [`AHEAD_MAX`] records, in the
/// wrapping sequence space): the batches before it have not arrived yet. Otherwise (equal, or
/// behind) waiting for predecessors cannot help.
pub fn is_ahead(expected: i32, got: i32) -> bool {
    let modulus = i64::from(i32::MAX) + 1;
    let d = (i64::from(got) - i64::from(expected)).rem_euclid(modulus);
    d > 0 && d < AHEAD_MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_after_i32_max() {
        assert_eq!(next_after(0), 1);
        assert_eq!(next_after(i32::MAX), 0);
        assert_eq!(advance(i32::MAX, 1), 0);
        assert_eq!(advance(i32::MAX - 1, 3), 1);
        assert_eq!(advance(5, 0), 5);
        assert_eq!(next_after(-1), 0);
        assert_eq!(last_of(0, 1), 0);
        assert_eq!(last_of(10, 5), 14);
        assert_eq!(last_of(i32::MAX, 2), 0);
    }

    #[test]
    fn ahead_means_a_predecessor_is_missing() {
        assert!(is_ahead(0, 1));
        assert!(is_ahead(i32::MAX, 3));
        assert!(!is_ahead(5, 5));
        assert!(!is_ahead(5, 0), "behind");
        assert!(!is_ahead(0, i32::MAX), "far behind across the wrap");
    }
}
