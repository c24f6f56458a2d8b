//! One record inside a batch: the value types ([`Record`], [`NewRecord`], [`Header`]) and the
//! record's varint byte layout (encoding for the builder, checked scanning for the reader).
//!
//! ```text
//! length: varint            bytes after this field
//! attributes: int8          always 0
//! timestampDelta: varlong   record timestamp - baseTimestamp
//! offsetDelta: varint       record offset - baseOffset (= index in the batch)
//! keyLength: varint         -1 for a null key
//! key: byte[keyLength]
//! valueLength: varint       -1 for a null value
//! value: byte[valueLength]
//! headerCount: varint
//! headers: [headerKeyLength: varint, headerKey: utf8, headerValueLength: varint (-1 = null),
//!           headerValue: byte[headerValueLength]]
//! ```

use std::ops::Range;

use bytes::{BufMut, Bytes};

use crate::RecordError;
use crate::error::RecordFault;
use crate::varint::{
    decode_varint, decode_varlong, encode_varint, encode_varlong, varint_len, varlong_len,
};

/// A record header: a UTF-8 key and a nullable value. Keys may repeat.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header's key (Kafka forbids a null key; an empty one is allowed).
    pub key: String,
    /// The header's value; `None` (length -1) differs from an empty value (length 0).
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with `key` and `value`.
    pub fn new(key: impl Into<String>, value: Option<Bytes>) -> Header {
        Header {
            key: key.into(),
            value,
        }
    }
}

/// A record read from a [`crate::Batch`]. `key`, `value` and header values are slices of the
/// batch's bytes (no copy); header keys are copied into `String`s after UTF-8 validation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// The record's offset: the batch's base offset plus the record's index.
    pub offset: i64,
    /// Milliseconds since the Unix epoch: `baseTimestamp + timestampDelta` for create time, the
    /// batch's `maxTimestamp` for log-append time.
    pub timestamp: i64,
    /// The key; `None` (length -1) differs from an empty key (length 0).
    pub key: Option<Bytes>,
    /// The value; `None` (a tombstone in compacted topics) differs from an empty value.
    pub value: Option<Bytes>,
    /// The headers, in batch order.
    pub headers: Vec<Header>,
}

/// A record to append with [`crate::BatchBuilder::append`]: everything but the offset, which
/// the log assigns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NewRecord {
    /// Creation time in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The key, or `None` for a null key.
    pub key: Option<Bytes>,
    /// The value, or `None` for a null value.
    pub value: Option<Bytes>,
    /// The headers, in order.
    pub headers: Vec<Header>,
}

impl NewRecord {
    /// A record with `timestamp`, `key` and `value`, and no headers.
    pub fn new(timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> NewRecord {
        NewRecord {
            timestamp,
            key,
            value,
            headers: Vec::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, key: impl Into<String>, value: Option<Bytes>) -> NewRecord {
        self.headers.push(Header::new(key, value));
        self
    }
}

/// A length as the i32 the format stores, or an error naming the field.
fn length_i32(length: usize, what: &'static str) -> Result<i32, RecordError> {
    i32::try_from(length).map_err(|_| RecordError::Unbuildable { reason: what })
}

fn nullable_len(bytes: Option<&Bytes>, what: &'static str) -> Result<usize, RecordError> {
    Ok(match bytes {
        None => varint_len(-1),
        Some(bytes) => varint_len(length_i32(bytes.len(), what)?) + bytes.len(),
    })
}

/// Bytes of the record after its length varint; errors if a length does not fit an i32.
pub(crate) fn body_len(
    record: &NewRecord,
    timestamp_delta: i64,
    offset_delta: i32,
) -> Result<usize, RecordError> {
    let mut len = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
    len += nullable_len(record.key.as_ref(), "key longer than i32::MAX bytes")?;
    len += nullable_len(record.value.as_ref(), "value longer than i32::MAX bytes")?;
    len += varint_len(length_i32(
        record.headers.len(),
        "more than i32::MAX headers",
    )?);
    for header in &record.headers {
        let key_len = length_i32(header.key.len(), "header key longer than i32::MAX bytes")?;
        len += varint_len(key_len) + header.key.len();
        len += nullable_len(
            header.value.as_ref(),
            "header value longer than i32::MAX bytes",
        )?;
    }
    Ok(len)
}

/// Bytes of the whole record (length varint included), given its body length.
pub(crate) fn framed_len(body_len: usize) -> Result<usize, RecordError> {
    let body = length_i32(body_len, "record longer than i32::MAX bytes")?;
    Ok(varint_len(body) + body_len)
}

fn put_nullable(out: &mut impl BufMut, bytes: Option<&Bytes>) {
    match bytes {
        None => encode_varint(-1, out),
        Some(bytes) => {
            // Lengths were checked by `body_len`, which the caller ran first.
            encode_varint(bytes.len() as i32, out);
            out.put_slice(bytes);
        }
    }
}

/// Writes the record; the caller computed `body_len` with [`body_len`] (which checked every
/// length fits an i32).
pub(crate) fn encode(
    out: &mut impl BufMut,
    record: &NewRecord,
    timestamp_delta: i64,
    offset_delta: i32,
    body_len: usize,
) {
    encode_varint(body_len as i32, out);
    out.put_u8(0); // attributes: none defined for records
    encode_varlong(timestamp_delta, out);
    encode_varint(offset_delta, out);
    put_nullable(out, record.key.as_ref());
    put_nullable(out, record.value.as_ref());
    encode_varint(record.headers.len() as i32, out);
    for header in &record.headers {
        encode_varint(header.key.len() as i32, out);
        out.put_slice(header.key.as_bytes());
        put_nullable(out, header.value.as_ref());
    }
}

/// Where one record's fields lie in the batch (positions from the batch's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordLayout {
    /// Position just past the record.
    pub next: usize,
    /// The stored timestamp delta.
    pub timestamp_delta: i64,
    /// The key's bytes, or `None` for null.
    pub key: Option<Range<usize>>,
    /// The value's bytes, or `None` for null.
    pub value: Option<Range<usize>>,
    /// Number of headers.
    pub header_count: usize,
    /// The bytes holding the headers.
    pub headers: Range<usize>,
}

/// A bounded reader over one record's bytes whose failures are [`RecordFault`]s.
struct Cursor<'a> {
    /// The whole batch.
    batch: &'a [u8],
    /// Next position to read.
    pos: usize,
    /// End of the record (exclusive); nothing at or past it is read.
    end: usize,
}

fn varint_fault(error: RecordError) -> RecordFault {
    match error {
        RecordError::VarintOverflow { max_bytes } => RecordFault::VarintOverflow { max_bytes },
        _ => RecordFault::Truncated,
    }
}

impl Cursor<'_> {
    fn rest(&self) -> &[u8] {
        self.batch.get(self.pos..self.end).unwrap_or_default()
    }

    fn byte(&mut self) -> Result<u8, RecordFault> {
        let byte = *self.rest().first().ok_or(RecordFault::Truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<i32, RecordFault> {
        let (value, used) = decode_varint(self.rest()).map_err(varint_fault)?;
        self.pos += used;
        Ok(value)
    }

    fn varlong(&mut self) -> Result<i64, RecordFault> {
        let (value, used) = decode_varlong(self.rest()).map_err(varint_fault)?;
        self.pos += used;
        Ok(value)
    }

    /// Skips `len` bytes and returns their range.
    fn take(&mut self, len: i32, field: &'static str) -> Result<Range<usize>, RecordFault> {
        let len =
            usize::try_from(len).map_err(|_| RecordFault::BadLength { field, length: len })?;
        if len > self.end - self.pos {
            return Err(RecordFault::Truncated);
        }
        let range = self.pos..self.pos + len;
        self.pos += len;
        Ok(range)
    }

    /// A length-prefixed byte string where length -1 means null.
    fn nullable(&mut self, field: &'static str) -> Result<Option<Range<usize>>, RecordFault> {
        match self.varint()? {
            -1 => Ok(None),
            len => self.take(len, field).map(Some),
        }
    }

    /// One header: its key's range (validated UTF-8) and its value's range.
    fn header(&mut self) -> Result<(Range<usize>, Option<Range<usize>>), RecordFault> {
        let key_len = self.varint()?;
        let key = self.take(key_len, "header key length")?;
        if std::str::from_utf8(&self.batch[key.clone()]).is_err() {
            return Err(RecordFault::HeaderKeyNotUtf8);
        }
        let value = self.nullable("header value length")?;
        Ok((key, value))
    }
}

/// Checks the record that starts at `batch[pos]` (record `index` of the batch) and returns where
/// its fields lie. Checks: the declared length lies within the batch, attributes are 0, the
/// offset delta is `index`, every field lies within the declared length and the fields fill it
/// exactly, lengths are -1 or more (header counts and header key lengths 0 or more), header keys
/// are UTF-8. It does not allocate.
pub(crate) fn scan(batch: &[u8], pos: usize, index: i32) -> Result<RecordLayout, RecordFault> {
    let rest = batch.get(pos..).unwrap_or_default();
    let (length, length_len) = decode_varint(rest).map_err(varint_fault)?;
    let start = pos + length_len;
    let available = batch.len() - start;
    let body_len = match usize::try_from(length) {
        Ok(body_len) if body_len <= available => body_len,
        _ => return Err(RecordFault::LengthOutOfBounds { length, available }),
    };
    let mut cursor = Cursor {
        batch,
        pos: start,
        end: start + body_len,
    };
    let attributes = cursor.byte()?;
    if attributes != 0 {
        return Err(RecordFault::Attributes(attributes));
    }
    let timestamp_delta = cursor.varlong()?;
    let offset_delta = cursor.varint()?;
    if offset_delta != index {
        return Err(RecordFault::OffsetDelta {
            expected: index,
            found: offset_delta,
        });
    }
    let key = cursor.nullable("key length")?;
    let value = cursor.nullable("value length")?;
    let header_count = cursor.varint()?;
    let header_count = usize::try_from(header_count).map_err(|_| RecordFault::BadLength {
        field: "header count",
        length: header_count,
    })?;
    let headers_start = cursor.pos;
    for _ in 0..header_count {
        cursor.header()?;
    }
    if cursor.pos != cursor.end {
        return Err(RecordFault::LengthMismatch {
            declared: length,
            used: cursor.pos - start,
        });
    }
    Ok(RecordLayout {
        next: cursor.end,
        timestamp_delta,
        key,
        value,
        header_count,
        headers: headers_start..cursor.end,
    })
}

/// Builds the headers of a record [`scan`] accepted, slicing values out of `batch`.
///
/// Returns `None` only if the headers are malformed, which [`scan`] already ruled out.
pub(crate) fn headers(batch: &Bytes, layout: &RecordLayout) -> Option<Vec<Header>> {
    let mut cursor = Cursor {
        batch,
        pos: layout.headers.start,
        end: layout.headers.end,
    };
    let mut headers = Vec::with_capacity(layout.header_count);
    for _ in 0..layout.header_count {
        let (key, value) = cursor.header().ok()?;
        let key = std::str::from_utf8(&batch[key]).ok()?.to_owned();
        headers.push(Header {
            key,
            value: value.map(|range| batch.slice(range)),
        });
    }
    Some(headers)
}
