//! Fuzz target: the frame decoder and the metadata-file decoders of strata-log on arbitrary
//! bytes. Every input must decode to a value or an error; never a panic or an out-of-bounds
//! read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_log::manifest::{Manifest, StateRecord, decode_vote};
use strata_log::segment::FrameWalker;

fuzz_target!(|data: &[u8]| {
    walk(data);
    // Random bytes almost never carry a matching CRC: also try the input "sealed" as one frame
    // (length and CRC fixed up) so the field checks behind the CRC are explored.
    if data.len() >= 48 {
        let mut sealed = data.to_vec();
        let len = sealed.len() as u32;
        sealed[0..4].copy_from_slice(&len.to_le_bytes());
        let crc = crc32fast::hash(&sealed[8..]);
        sealed[4..8].copy_from_slice(&crc.to_le_bytes());
        walk(&sealed);
    }
    let _ = Manifest::decode(data);
    let _ = StateRecord::decode(data);
    let _ = StateRecord::read_best(data);
    let _ = decode_vote(data);
});

fn walk(data: &[u8]) {
    for verify in [false, true] {
        let mut end = 0u64;
        for item in FrameWalker::new(data, 0, verify, 1 << 20) {
            match item {
                Ok((pos, h)) => {
                    assert!(pos >= end);
                    end = pos + h.frame_len as u64;
                    assert!(end as usize <= data.len());
                }
                Err(_) => break,
            }
        }
    }
}
