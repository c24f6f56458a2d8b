//! `strata produce`: one record given on the command line, or one record per stdin line.
//!
//! Stdin lines are pipelined: a reader task sends every line through one [`Producer`] without
//! waiting for acknowledgements and queues each record's [`SendFuture`] in input order; the
//! printer awaits them in that order and prints one line per record, acknowledged or failed.
//! The queue is bounded in records and in bytes, and the producer's buffer bounds what is
//! unacknowledged, so memory stays bounded however long the input.

use super::{AcksArg, ProduceArgs, connect, exit_code, parse_key_value};
use crate::Format;
use crate::output::{Out, json_bytes};
use bytes::Bytes;
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use strata_client::{
    Acks, Error, Producer, ProducerConfig, ProducerRecord, RecordMetadata, SendFuture,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Most records read from stdin whose outcome has not been printed yet: the length of the
/// queue between the reader and the printer.
const PENDING_RECORDS_MAX: usize = 4096;

/// Most bytes of values read from stdin whose outcome has not been printed yet (a value is
/// kept until its line is printed, for the JSON output).
const PENDING_BYTES_MAX: usize = 64 << 20;

/// Longest stdin line: the producer's default buffer, so no longer record could be sent
/// anyway. A longer line is reported as a failed record naming this limit, and skipped.
const LINE_BYTES_MAX: usize = 32 << 20;

/// The producer settings for an acknowledgement level: idempotence needs `acks=all`, so it is
/// on exactly then.
pub(super) fn producer_config(acks: AcksArg, linger: Duration) -> ProducerConfig {
    let acks = match acks {
        AcksArg::All => Acks::All,
        AcksArg::Leader => Acks::Leader,
        AcksArg::None => Acks::None,
    };
    ProducerConfig {
        acks,
        idempotence: acks == Acks::All,
        linger,
        ..ProducerConfig::default()
    }
}

/// What every record of one `strata produce` shares.
#[derive(Debug, Clone)]
struct Template {
    topic: String,
    key: Option<Bytes>,
    partition: Option<u32>,
    headers: Vec<(String, Option<Bytes>)>,
}

impl Template {
    fn record(&self, value: Bytes) -> ProducerRecord {
        ProducerRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            key: self.key.clone(),
            value: Some(value),
            headers: self.headers.clone(),
            timestamp_ms: None,
        }
    }
}

/// A record sent (or refused at once), waiting for its line to be printed.
struct Pending {
    value: Bytes,
    sent: Result<SendFuture, Error>,
    /// Its share of [`PENDING_BYTES_MAX`], returned once printed.
    _permit: Option<OwnedSemaphorePermit>,
}

/// Runs `strata produce`.
pub async fn run(brokers: &str, format: Format, args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let headers = args
        .headers
        .iter()
        .map(|h| parse_key_value("--header", h).map(|(k, v)| (k, Some(Bytes::from(v)))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let template = Template {
        topic: args.topic.clone(),
        key: args.key.map(Bytes::from),
        partition: args.partition,
        headers,
    };
    let client = connect(brokers).await?;
    // An unknown topic fails once, before any input is read.
    let metadata = client.metadata([args.topic.clone()]).await?;
    if !metadata.topics.iter().any(|t| t.name == args.topic) {
        return Err(Error::UnknownTopic { topic: args.topic }.into());
    }
    match args.value {
        Some(value) => {
            // One record: nothing to wait for, so no linger.
            let mut config = producer_config(args.acks, Duration::ZERO);
            config.compression = args.compression.into();
            let producer = client.producer(config)?;
            let value = Bytes::from(value);
            let outcome = match producer.send(template.record(value.clone())).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            producer.close().await;
            let written = outcome?;
            let mut out = Out::new();
            out.line(&ack_line(format, &template, &value, &Ok(written)))?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let producer = client.producer(ProducerConfig {
                compression: args.compression.into(),
                ..producer_config(args.acks, ProducerConfig::default().linger)
            })?;
            produce_lines(format, producer, template).await
        }
    }
}

/// Sends every stdin line and prints their outcomes in input order.
async fn produce_lines(
    format: Format,
    producer: Producer,
    template: Template,
) -> anyhow::Result<ExitCode> {
    let (tx, mut rx) = mpsc::channel::<Pending>(PENDING_RECORDS_MAX);
    let reader = tokio::spawn(read_and_send(producer.clone(), template.clone(), tx));
    let mut out = Out::new();
    let (mut acknowledged, mut failed) = (0u64, 0u64);
    while let Some(pending) = rx.recv().await {
        let outcome = match pending.sent {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match &outcome {
            Ok(_) => acknowledged += 1,
            Err(_) => failed += 1,
        }
        out.line(&ack_line(format, &template, &pending.value, &outcome))?;
        if rx.is_empty() {
            out.flush()?;
        }
    }
    let read = reader.await;
    producer.close().await;
    out.flush()?;
    match read {
        Ok(result) => result?,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => anyhow::bail!("the stdin reader stopped: {e}"),
    }
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} records failed",
            acknowledged + failed
        );
    }
    Ok(exit_code(failed == 0))
}

/// Reads stdin line by line (without the line break, `\n` or `\r\n`) and sends each line as a
/// record, queueing its outcome on `tx`; returns at the end of input.
async fn read_and_send(
    producer: Producer,
    template: Template,
    tx: mpsc::Sender<Pending>,
) -> anyhow::Result<()> {
    let budget = Arc::new(Semaphore::new(PENDING_BYTES_MAX));
    let mut stdin = BufReader::with_capacity(64 << 10, tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut stdin)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(());
        }
        let pending = if line.len() > LINE_BYTES_MAX && line.last() != Some(&b'\n') {
            let rest = skip_line(&mut stdin).await?;
            Pending {
                value: Bytes::new(),
                sent: Err(Error::MessageTooLarge {
                    size: (line.len() + rest) as u64,
                    limit: LINE_BYTES_MAX as u64,
                }),
                _permit: None,
            }
        } else {
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            let value = Bytes::copy_from_slice(&line);
            // The budget holds at least LINE_BYTES_MAX, so the cast cannot saturate.
            let permits = u32::try_from(value.len().min(PENDING_BYTES_MAX)).unwrap_or(u32::MAX);
            let permit = budget.clone().acquire_many_owned(permits).await?;
            let sent = producer.send(template.record(value.clone())).await;
            Pending {
                value,
                sent,
                _permit: Some(permit),
            }
        };
        if tx.send(pending).await.is_err() {
            // The printer stopped (it reports why).
            return Ok(());
        }
    }
}

/// Reads up to and including the next line break (or the end of input); returns the bytes
/// read.
async fn skip_line(stdin: &mut BufReader<tokio::io::Stdin>) -> anyhow::Result<usize> {
    let mut skipped = 0;
    loop {
        let buf = stdin.fill_buf().await?;
        if buf.is_empty() {
            return Ok(skipped);
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                stdin.consume(i + 1);
                return Ok(skipped + i);
            }
            None => {
                let n = buf.len();
                stdin.consume(n);
                skipped += n;
            }
        }
    }
}

/// The line printed for one record: where it was written, or why it failed.
fn ack_line(
    format: Format,
    template: &Template,
    value: &Bytes,
    outcome: &Result<RecordMetadata, Error>,
) -> String {
    match (format, outcome) {
        (Format::Json, Ok(m)) => json!({
            "topic": m.topic,
            "partition": m.partition,
            "offset": (m.offset >= 0).then_some(m.offset),
            "key": json_bytes(template.key.as_ref()),
            "value": json_bytes(Some(value)),
        })
        .to_string(),
        (Format::Json, Err(e)) => json!({
            "topic": template.topic,
            "error": e.to_string(),
        })
        .to_string(),
        (Format::Table | Format::Text, Ok(m)) => {
            format!("partition={} offset={}", m.partition, m.offset)
        }
        (Format::Table | Format::Text, Err(e)) => format!("error: {e}"),
    }
}
