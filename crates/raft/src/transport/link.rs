//! [`LinkControl`]: the seam through which tests cut, drop and delay messages per link.
//!
//! The client consults it before every message it sends from node `from` to node `to` (each
//! unary RPC, each heartbeat before it joins a batch, each request of an append stream and the
//! opening of the stream). Links are directed: a full partition between `a` and `b` cuts both
//! `(a, b)` and `(b, a)`. Answers are never filtered, so cutting `(a, b)` alone still lets `b`
//! answer what reached it before the cut.
//!
//! - `cut`: the message fails at once as `Unreachable` (openraft backs off), as with a
//!   refused connection.
//! - `drop_probability`: the message is lost with this probability and the call fails at once
//!   as `Timeout`, as if its deadline had passed (tests do not wait out timeouts). In an append
//!   stream a lost request breaks the stream, as a lost message on an ordered connection would.
//! - `delay_ms` (+ up to `jitter_ms` more, drawn per message): the message waits this long
//!   before it is sent. Unary messages wait independently, so jitter reorders them; the
//!   requests of one stream wait in turn and keep their order.
//!
//! Random draws come from one RNG seeded by [`LinkControl::new`]'s seed, so a test that prints
//! its seed can be replayed (up to the interleaving of concurrent senders). With no fault set,
//! checking costs one atomic load.

use crate::types::NodeId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// The faults of one directed link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFault {
    /// Fail every message at once as unreachable.
    pub cut: bool,
    /// Probability in `[0, 1]` that a message is lost.
    pub drop_probability: f64,
    /// Delay of every message before it is sent.
    pub delay_ms: u64,
    /// Extra random delay, uniform in `[0, jitter_ms]`, drawn per message.
    pub jitter_ms: u64,
}

impl LinkFault {
    fn is_clear(&self) -> bool {
        *self == LinkFault::default()
    }
}

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it after this delay.
    Deliver(Duration),
    /// The link is cut.
    Cut,
    /// The message is lost.
    Drop,
}

/// Per-link faults shared by every client of a node (or of a whole in-process cluster).
#[derive(Debug)]
pub struct LinkControl {
    seed: u64,
    active: AtomicBool,
    faults: RwLock<HashMap<(NodeId, NodeId), LinkFault>>,
    rng: Mutex<StdRng>,
}

impl Default for LinkControl {
    fn default() -> Self {
        LinkControl::new(0)
    }
}

impl LinkControl {
    /// No faults; random draws seeded with `seed`.
    pub fn new(seed: u64) -> LinkControl {
        LinkControl {
            seed,
            active: AtomicBool::new(false),
            faults: RwLock::new(HashMap::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// The seed of the random draws (print it in tests).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Sets the faults of the link `from -> to` (a default [`LinkFault`] clears them).
    ///
    /// # Panics
    /// If `drop_probability` is not within `[0, 1]` (a test bug).
    pub fn set(&self, from: NodeId, to: NodeId, fault: LinkFault) {
        assert!(
            (0.0..=1.0).contains(&fault.drop_probability),
            "drop_probability {} is not within [0, 1]",
            fault.drop_probability
        );
        let mut faults = self.write();
        if fault.is_clear() {
            faults.remove(&(from, to));
        } else {
            faults.insert((from, to), fault);
        }
        self.active.store(!faults.is_empty(), Ordering::Release);
    }

    /// The faults of the link `from -> to`.
    pub fn get(&self, from: NodeId, to: NodeId) -> LinkFault {
        self.read().get(&(from, to)).cloned().unwrap_or_default()
    }

    /// Cuts the link `from -> to` (keeping its other faults).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        let fault = LinkFault {
            cut: true,
            ..self.get(from, to)
        };
        self.set(from, to, fault);
    }

    /// Cuts both directions between `a` and `b`.
    pub fn partition(&self, a: NodeId, b: NodeId) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Clears every fault of the link `from -> to`.
    pub fn heal(&self, from: NodeId, to: NodeId) {
        self.set(from, to, LinkFault::default());
    }

    /// Clears every fault of every link.
    pub fn heal_all(&self) {
        let mut faults = self.write();
        faults.clear();
        self.active.store(false, Ordering::Release);
    }

    /// Decides the fate of one message on `from -> to`.
    pub(crate) fn verdict(&self, from: NodeId, to: NodeId) -> Verdict {
        if !self.active.load(Ordering::Acquire) {
            return Verdict::Deliver(Duration::ZERO);
        }
        let Some(fault) = self.read().get(&(from, to)).cloned() else {
            return Verdict::Deliver(Duration::ZERO);
        };
        if fault.cut {
            return Verdict::Cut;
        }
        let mut rng = strata_record::sync::lock(&self.rng);
        if fault.drop_probability > 0.0 && rng.random_bool(fault.drop_probability) {
            return Verdict::Drop;
        }
        let jitter = if fault.jitter_ms > 0 {
            rng.random_range(0..=fault.jitter_ms)
        } else {
            0
        };
        Verdict::Deliver(Duration::from_millis(fault.delay_ms + jitter))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<(NodeId, NodeId), LinkFault>> {
        strata_record::sync::read(&self.faults)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(NodeId, NodeId), LinkFault>> {
        strata_record::sync::write(&self.faults)
    }
}
