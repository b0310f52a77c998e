//! The on-disk record format described in the module docs: encoding a record into its bytes,
//! decoding (and checking) one back, and the headers block inside it.

use std::io::{self, Read};

use super::MAX_RECORD_BYTES;
use crate::Outgoing;

const MAGIC: u32 = 0x4C56_4553; // "SEVL" on disk
const NO_KEY: u32 = u32::MAX;
const HEADER_BYTES: u64 = 20;

pub(super) fn headers_len(record: &Outgoing) -> usize {
    record
        .headers
        .iter()
        .map(|(name, value)| 8 + name.len() + value.len())
        .sum()
}

pub(super) fn encode(buf: &mut Vec<u8>, record: &Outgoing) {
    // Lengths fit in u32: append() refused anything above MAX_RECORD_BYTES.
    let key = record.key.as_deref().unwrap_or_default();
    let mut headers = Vec::with_capacity(headers_len(record));
    for (name, value) in &record.headers {
        headers.extend_from_slice(&(name.len() as u32).to_le_bytes());
        headers.extend_from_slice(name.as_bytes());
        headers.extend_from_slice(&(value.len() as u32).to_le_bytes());
        headers.extend_from_slice(value);
    }
    let mut crc = crc32fast::Hasher::new();
    for part in [key, &record.payload, &headers] {
        crc.update(part);
    }
    let key_len = record.key.as_ref().map_or(NO_KEY, |k| k.len() as u32);
    let lengths = [key_len, record.payload.len() as u32, headers.len() as u32];
    buf.extend_from_slice(&MAGIC.to_le_bytes());
    for len in lengths {
        buf.extend_from_slice(&len.to_le_bytes());
    }
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    for part in [key, &record.payload, &headers] {
        buf.extend_from_slice(part);
    }
}

type Decoded = (Outgoing, u64);

/// Decodes the record at the reader's position, of which at most `available` bytes exist.
/// The outer error is a failed read; the inner one says why the bytes are not a whole record.
pub(super) fn decode(
    reader: &mut impl Read,
    available: u64,
) -> io::Result<Result<Decoded, String>> {
    if available < HEADER_BYTES {
        return Ok(Err(format!("partial header of {available} bytes")));
    }
    let mut header = [0u8; HEADER_BYTES as usize];
    reader.read_exact(&mut header)?;
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(0) != MAGIC {
        return Ok(Err("bad magic number".to_owned()));
    }
    let key_len = match word(4) {
        NO_KEY => None,
        n => Some(n as usize),
    };
    let lengths = [key_len.unwrap_or(0), word(8) as usize, word(12) as usize];
    if lengths.iter().any(|&len| len > MAX_RECORD_BYTES) {
        return Ok(Err("record length over the limit".to_owned()));
    }
    let body = lengths.iter().sum::<usize>() as u64;
    if available - HEADER_BYTES < body {
        let present = available - HEADER_BYTES;
        return Ok(Err(format!(
            "partial record: {body} bytes declared, {present} present"
        )));
    }
    let mut parts = lengths.map(|len| vec![0u8; len]);
    let mut crc = crc32fast::Hasher::new();
    for part in &mut parts {
        reader.read_exact(part)?;
        crc.update(part);
    }
    if crc.finalize() != word(16) {
        return Ok(Err("checksum mismatch".to_owned()));
    }
    let [key, payload, headers] = parts;
    let Some(headers) = parse_headers(&headers) else {
        return Ok(Err("malformed headers".to_owned()));
    };
    let record = Outgoing {
        key: key_len.map(|_| key),
        payload,
        headers,
    };
    Ok(Ok((record, HEADER_BYTES + body)))
}

/// Splits the headers block back into (name, value) pairs; None if it does not parse.
fn parse_headers(mut bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    fn take(bytes: &mut &[u8]) -> Option<Vec<u8>> {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let value = rest.get(..len)?.to_vec();
        *bytes = &rest[len..];
        Some(value)
    }
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name = String::from_utf8(take(&mut bytes)?).ok()?;
        headers.push((name, take(&mut bytes)?));
    }
    Some(headers)
}
