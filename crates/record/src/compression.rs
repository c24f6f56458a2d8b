//! The codecs of a batch's records region, as Kafka clients write them: gzip (one or more
//! gzip members), snappy (raw, or in the xerial framing of the Java client), lz4 (the LZ4
//! frame format) and zstd (a zstd frame). All pure Rust.
//!
//! Decompression stops at [`DECOMPRESSED_BYTES_MAX`]: a batch whose records would inflate
//! beyond it is refused with [`RecordError::Decompression`] naming the limit, so a small
//! batch cannot make a reader allocate without bound.

use crate::RecordError;
use crate::attributes::Compression;
use std::io::{Read, Write};

/// Most bytes the records region of one batch may decompress to (64 MiB: four times the
/// largest batch a log entry holds).
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// The xerial snappy framing's header: magic, then version 1 and compatible version 1.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Uncompressed bytes per xerial block (the Java client's default block size).
const XERIAL_BLOCK: usize = 32 << 10;

fn failed(codec: Compression, reason: impl std::fmt::Display) -> RecordError {
    RecordError::Decompression {
        codec: codec.name(),
        reason: reason.to_string(),
    }
}

/// Reads all of `r`, refusing more than `limit` bytes.
fn read_limited(codec: Compression, r: impl Read, limit: usize) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| failed(codec, e))?;
    if out.len() > limit {
        return Err(too_big(codec, limit));
    }
    Ok(out)
}

fn too_big(codec: Compression, limit: usize) -> RecordError {
    failed(
        codec,
        format!(
            "the records decompress to more than {limit} bytes \
             (strata_record::DECOMPRESSED_BYTES_MAX)"
        ),
    )
}

/// The records region `data`, compressed with `codec`, decompressed (at most `limit` bytes).
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(too_big(codec, limit));
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_limited(codec, flate2::read::MultiGzDecoder::new(data), limit),
        Compression::Snappy => snappy_decompress(data, limit),
        Compression::Lz4 => read_limited(codec, lz4_flex::frame::FrameDecoder::new(data), limit),
        Compression::Zstd => {
            // A frame declares its window; no window beyond the limit is allocated.
            let d = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                data,
                DECOMPRESSED_BYTES_MAX as u64,
            )
            .map_err(|e| failed(codec, e))?;
            read_limited(codec, d, limit)
        }
    }
}

fn snappy_raw(data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(data).map_err(|e| failed(codec, e))?;
    if out.len() + len > limit {
        return Err(too_big(codec, limit));
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(data, &mut out[start..])
        .map_err(|e| failed(codec, e))?;
    Ok(())
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let codec = Compression::Snappy;
    let mut out = Vec::new();
    if !data.starts_with(&XERIAL_MAGIC) {
        snappy_raw(data, limit, &mut out)?;
        return Ok(out);
    }
    // Magic (8), version (4), compatible version (4), then [length (4), raw block]...
    let mut rest = data
        .get(16..)
        .ok_or_else(|| failed(codec, "xerial header cut short"))?;
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| failed(codec, "xerial block length cut short"))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let block = rest
            .get(4..4 + len)
            .ok_or_else(|| failed(codec, format!("xerial block of {len} bytes cut short")))?;
        snappy_raw(block, limit, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// `data` compressed with `codec`.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    let fail = |_: std::io::Error| RecordError::Unbuildable {
        reason: "compressing the records failed",
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).map_err(fail)?;
            e.finish().map_err(fail)
        }
        Compression::Snappy => {
            // The Java client's xerial framing, which every Kafka client reads.
            let mut out = Vec::with_capacity(data.len() / 2 + 32);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = enc
                    .compress_vec(chunk)
                    .map_err(|_| RecordError::Unbuildable {
                        reason: "compressing the records failed",
                    })?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).map_err(fail)?;
            e.finish().map_err(|_| RecordError::Unbuildable {
                reason: "compressing the records failed",
            })
        }
        Compression::Zstd => Ok(ruzstd::encoding::compress_to_vec(
            data,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in CODECS {
            let c = compress(codec, &data).unwrap();
            assert!(c.len() < data.len(), "{codec} compresses");
            assert_eq!(decompress(codec, &c, DECOMPRESSED_BYTES_MAX).unwrap(), data);
        }
    }

    #[test]
    fn the_limit_is_named_and_garbage_is_refused() {
        let data = vec![0u8; 100_000];
        for codec in CODECS {
            let c = compress(codec, &data).unwrap();
            let e = decompress(codec, &c, 1000).unwrap_err();
            assert!(
                e.to_string().contains("DECOMPRESSED_BYTES_MAX"),
                "{codec}: {e}"
            );
            let e = decompress(codec, b"definitely not compressed", 1000).unwrap_err();
            assert!(
                matches!(e, RecordError::Decompression { codec: name, .. } if name == codec.name()),
                "{codec}: {e}"
            );
        }
    }

    #[test]
    fn raw_snappy_is_read_too() {
        let data = b"raw snappy, as some clients write it".repeat(10);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, DECOMPRESSED_BYTES_MAX).unwrap(),
            data
        );
    }
}
