//! Child process for the queue SIGKILL test: a consumer of queue group GROUP on TOPIC that,
//! of every ten messages, acknowledges eight, releases one, and holds one without settling
//! (printing `hold <offset>`, then waiting to be killed). It prints `delivered <offset>
//! <delivery count>` for every message and `acked <offset> <delivery count>` after each
//! acknowledgement the cluster confirmed.
//!
//! Usage: `queue_worker BROKERS TOPIC GROUP SEED`.

use anyhow::Context;
use std::io::Write;
use std::time::Duration;
use strata_client::{Client, Error, QueueConsumerConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let brokers = args
        .next()
        .context("usage: queue_worker BROKERS TOPIC GROUP SEED")?;
    let topic = args.next().context("TOPIC")?;
    let group = args.next().context("GROUP")?;
    let seed: u64 = args.next().context("SEED")?.parse()?;
    let client = Client::connect(brokers.split(',')).await?;
    let mut consumer = client.queue_consumer(QueueConsumerConfig {
        lock: Duration::from_millis(1500),
        max_deliveries: 3,
        max_in_flight: 20,
        ..QueueConsumerConfig::new(group, topic)
    })?;
    let mut rng = seed | 1;
    let mut out = std::io::stdout().lock();
    while let Some(m) = consumer.next().await {
        let m = m?;
        writeln!(out, "delivered {} {}", m.offset, m.delivery_count)?;
        out.flush()?;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        match rng % 10 {
            0 => {
                writeln!(out, "hold {}", m.offset)?;
                out.flush()?;
                // Killed here, holding the message (and whatever its streams buffered).
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            }
            1 => {
                let _ = consumer.release(&m, Duration::ZERO).await;
            }
            _ => match consumer.ack(&m).await {
                Ok(()) => {
                    writeln!(out, "acked {} {}", m.offset, m.delivery_count)?;
                    out.flush()?;
                }
                Err(Error::Queue { .. }) => {}
                Err(e) if e.is_retriable() => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
    Ok(())
}
