//! One interval's histogram, from its base64 text to a `Histogram`, with
//! every length and range checked against the bytes present before
//! anything is allocated.
//!
//! A log line is `Tag=T,start,length,max,BASE64`; the base64 holds
//! HdrHistogram's V2 encoding, usually compressed:
//!
//! ```text
//! compressed: cookie 0x1c849314 · u32 compressed length · zlib( the V2 below )
//! V2:         cookie 0x1c849313 · u32 counts length · u32 normalizing offset
//!             · u32 significant digits · u64 lowest · u64 highest
//!             · f64 integer-to-double ratio · the counts (zigzag LEB128)
//! ```
//!
//! The hdrhistogram crate's deserializer believes the header: an 80-byte
//! line that claims a 2 GiB payload makes it allocate and zero 2 GiB, and
//! one that declares lowest 1, highest 2^62 and 5 digits makes it allocate
//! the 48 MB of counters that range needs. So before handing it the bytes,
//! [`histogram`] inflates with a cap, checks each declared length against
//! what is there, and refuses a shape wider than [`MAX_COUNTERS`]. What
//! passes is decoded by the crate, whose allocation is then bounded.

use std::io::Read as _;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;

/// The compressed V2 cookie (with the `0x10` word-size bits).
const COMPRESSED: u32 = 0x1c84_9314;
/// The plain V2 cookie.
const PLAIN: u32 = 0x1c84_9313;
/// The plain V2 header: cookie, length, offset, digits (4 × u32), lowest,
/// highest, ratio (3 × 8 bytes).
const HEADER: usize = 40;

/// The most counters a histogram of a log may have: 2^21 (16 MiB while it
/// is decoded, freed once it is merged). Latency to an hour at 5 digits,
/// or any range at 3 digits, fits.
pub const MAX_COUNTERS: u64 = 1 << 21;

/// The most bytes one histogram may inflate to: a varint per counter.
const MAX_INFLATED: u64 = HEADER as u64 + 9 * MAX_COUNTERS;

/// Decodes one interval's base64 histogram, or says what is wrong with it.
pub fn histogram(base64: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.trim())
        .map_err(|e| format!("bad base64: {e}"))?;
    let plain = match read_u32(&bytes, 0)? {
        COMPRESSED => {
            let declared = u64::from(read_u32(&bytes, 4)?);
            let present = bytes.len() as u64 - 8;
            if declared > present {
                return Err(format!(
                    "the histogram declares {declared} compressed bytes; the line holds {present}"
                ));
            }
            let mut plain = Vec::new();
            flate2::read::ZlibDecoder::new(&bytes[8..8 + declared as usize])
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut plain)
                .map_err(|e| format!("bad histogram: compressed data: {e}"))?;
            if plain.len() as u64 > MAX_INFLATED {
                return Err(format!(
                    "the histogram inflates to more than {MAX_INFLATED} bytes"
                ));
            }
            plain
        }
        PLAIN => bytes,
        other => return Err(format!("bad histogram: unknown cookie {other:#x}")),
    };
    check_plain(&plain)?;
    Deserializer::new()
        .deserialize(&mut plain.as_slice())
        .map_err(|e| format!("bad histogram: {}", describe(&e)))
}

/// Checks a plain V2 encoding's header against its bytes and our limits.
fn check_plain(plain: &[u8]) -> Result<(), String> {
    if read_u32(plain, 0)? != PLAIN {
        return Err("bad histogram: not a V2 encoding inside".into());
    }
    let declared = u64::from(read_u32(plain, 4)?);
    let digits = read_u32(plain, 12)?;
    let lowest = read_u64(plain, 16)?;
    let highest = read_u64(plain, 24)?;
    let present = (plain.len() - HEADER) as u64;
    if declared > present {
        return Err(format!(
            "the histogram declares {declared} bytes of counts; it holds {present}"
        ));
    }
    if digits > 5 || lowest == 0 || highest < lowest.saturating_mul(2) {
        return Err(format!(
            "the histogram declares an impossible shape: lowest {lowest}, highest {highest}, \
             {digits} significant digits"
        ));
    }
    let counters = counters(lowest, highest, digits);
    if counters > MAX_COUNTERS {
        return Err(format!(
            "the histogram declares lowest {lowest}, highest {highest}, {digits} significant \
             digits: {counters} counters, more than the {MAX_COUNTERS} this report merges"
        ));
    }
    Ok(())
}

/// How many counters HdrHistogram allocates for a range and precision
/// (its `counts_array_length`): half a sub-bucket per doubling of the range
/// past the first full sub-bucket, plus one.
pub fn counters(lowest: u64, highest: u64, digits: u32) -> u64 {
    let single_unit = 2 * 10u64.pow(digits);
    let sub_bucket_count = single_unit.next_power_of_two();
    let unit_magnitude = 63 - lowest.leading_zeros();
    // The smallest value the first bucket cannot hold, doubled per bucket.
    let mut untrackable = u128::from(sub_bucket_count) << unit_magnitude;
    let mut buckets = 1u64;
    while untrackable <= u128::from(highest) {
        untrackable <<= 1;
        buckets += 1;
    }
    (buckets + 1) * (sub_bucket_count / 2)
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, String> {
    let word = bytes
        .get(at..at + 4)
        .ok_or("bad histogram: truncated header")?;
    Ok(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

fn read_u64(bytes: &[u8], at: usize) -> Result<u64, String> {
    let hi = read_u32(bytes, at)?;
    let lo = read_u32(bytes, at + 4)?;
    Ok(u64::from(hi) << 32 | u64::from(lo))
}

/// The crate's decode errors in words (its Debug form is not for users).
fn describe(e: &hdrhistogram::serialization::DeserializeError) -> String {
    use hdrhistogram::serialization::DeserializeError as E;
    match e {
        E::IoError(io) => format!("truncated or corrupt ({io})"),
        E::InvalidCookie => "unknown cookie".into(),
        E::UnsupportedFeature => "an encoding feature this report does not read".into(),
        E::UnsuitableCounterType => "a count too large".into(),
        E::InvalidParameters => "an impossible range or precision".into(),
        E::UsizeTypeTooSmall => "too large for this machine".into(),
        E::EncodedArrayTooLong => "more counts than its range has".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer, V2Serializer};

    fn encoded(h: &Histogram<u64>, compressed: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if compressed {
            V2DeflateSerializer::new().serialize(h, &mut out).unwrap();
        } else {
            V2Serializer::new().serialize(h, &mut out).unwrap();
        }
        out
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// What the crate writes, compressed or not, comes back equal.
    #[test]
    fn a_real_histogram_round_trips() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in [1, 50, 51, 1000, 123_456, 59_000_000] {
            h.record_n(v, v % 7 + 1).unwrap();
        }
        for compressed in [true, false] {
            let back = histogram(&b64(&encoded(&h, compressed))).unwrap();
            assert_eq!(back, h);
        }
    }

    /// The counter count matches the crate's own for the shapes in use.
    #[test]
    fn counters_match_the_crates_layout() {
        for (lo, hi, d) in [
            (1, 60_000_000, 3),
            (1, 2, 0),
            (1000, 1 << 40, 2),
            (1, u64::MAX, 3),
        ] {
            let h = Histogram::<u64>::new_with_bounds(lo, hi, d as u8).unwrap();
            assert_eq!(
                counters(lo, hi, d),
                h.distinct_values() as u64,
                "{lo} {hi} {d}"
            );
        }
    }

    /// A compressed header claiming 2 GiB on a short line is refused
    /// before any allocation, and names the lengths.
    #[test]
    fn a_declared_length_beyond_the_line_is_refused() {
        let mut bytes = COMPRESSED.to_be_bytes().to_vec();
        bytes.extend_from_slice(&0x8000_0000u32.to_be_bytes());
        bytes.extend_from_slice(&[0x78, 0x9c, 1, 2, 3]);
        let err = histogram(&b64(&bytes)).unwrap_err();
        assert_eq!(
            err,
            "the histogram declares 2147483648 compressed bytes; the line holds 5"
        );
        // The same inside: a plain header claiming more counts than follow.
        let h = Histogram::<u64>::new_with_bounds(1, 1000, 2).unwrap();
        let mut plain = encoded(&h, false);
        plain[4..8].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        let err = histogram(&b64(&plain)).unwrap_err();
        assert!(
            err.starts_with("the histogram declares 2147483647 bytes of counts"),
            "{err}"
        );
    }

    /// Lowest 1, highest 2^62, 5 digits: 6 million counters, refused.
    #[test]
    fn a_shape_too_wide_is_refused() {
        let h = Histogram::<u64>::new_with_bounds(1, 1 << 62, 5).unwrap();
        let err = histogram(&b64(&encoded(&h, true))).unwrap_err();
        assert!(
            err.contains("lowest 1, highest 4611686018427387904, 5 significant digits")
                && err.contains("more than the 2097152 this report merges"),
            "{err}"
        );
    }

    /// Garbage gives words, never a Debug dump.
    #[test]
    fn garbage_is_described() {
        assert!(histogram("!!!").unwrap_err().starts_with("bad base64"));
        assert_eq!(
            histogram(&b64(&[0, 1, 2, 3, 4])).unwrap_err(),
            "bad histogram: unknown cookie 0x10203"
        );
        let mut bytes = COMPRESSED.to_be_bytes().to_vec();
        bytes.extend_from_slice(&4u32.to_be_bytes());
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        let err = histogram(&b64(&bytes)).unwrap_err();
        assert!(err.starts_with("bad histogram: compressed data"), "{err}");
    }
}
