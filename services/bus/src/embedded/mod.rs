//! The embedded, durable, append-only log: the single-process stand-in for Kafka.
//!
//! Each topic is one file `<dir>/<topic>.log` holding one partition (always 0). The file is a
//! sequence of records, each laid out little endian as
//!
//! ```text
//! [magic u32][key length u32, u32::MAX = no key][payload length u32][headers length u32]
//! [crc32 of key ++ payload ++ headers u32][key bytes][payload bytes][headers bytes]
//! ```
//!
//! where the headers bytes are, per header, `[name length u32][name, UTF-8][value length u32][value]`
//! (the dead-letter topic carries its reasons there, as Kafka headers would).
//!
//! A record's offset is its ordinal in the file. An append writes the whole batch and fsyncs once
//! before acknowledging, so every acknowledged record survives a crash; a crash mid-append can
//! only leave a torn or half-synced tail, which [`EmbeddedLog::open`] cuts off. The record start
//! positions are kept in memory so that readers seek straight to any offset.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::{BusError, Outgoing, Record};

/// Largest payload accepted (bytes); bigger appends fail with [`BusError::TooLarge`].
/// Keys and encoded headers are held to the same limit so that a corrupt length can never ask for
/// a huge buffer.
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

const MAGIC: u32 = 0x4C56_4553; // "SEVL" on disk
const NO_KEY: u32 = u32::MAX;
const HEADER_BYTES: u64 = 20;

/// A handle on the log directory; clones share the same topics.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
}

struct Topic {
    name: String,
    path: PathBuf,
    /// Serialises appends; only ever locked inside blocking tasks, never across an `.await`.
    writer: Mutex<Writer>,
    /// Updated only after the batch is fsynced, so readers never see unacknowledged records.
    index: RwLock<Index>,
    appended: Notify,
}

struct Writer {
    /// Created on the first append, so that merely reading a topic leaves no file behind.
    file: Option<File>,
    /// Set when a failed append could not be rolled back: writing on would bury garbage mid-file.
    poisoned: bool,
}

#[derive(Default)]
struct Index {
    starts: Vec<u64>,
    end: u64,
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log directory, scanning every topic file and truncating a
    /// torn or corrupt tail (as left by kill -9 mid-write) with a warning.
    pub fn open(dir: &Path) -> Result<Self, BusError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut topics = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let path = entry.path();
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            if check_topic(name).is_err() || !entry.file_type().map_err(io_err(&path))?.is_file() {
                continue;
            }
            let (file, index) = scan(&path)?;
            topics.insert(
                name.to_owned(),
                Arc::new(Topic::new(name, path, Some(file), index)),
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                topics: Mutex::new(topics),
            }),
        })
    }

    /// Appends records to `topic` and makes them durable (one fsync for the batch) before
    /// returning their offsets. Either the whole batch is acknowledged or none of it is.
    pub async fn append(&self, topic: &str, records: Vec<Outgoing>) -> Result<Vec<i64>, BusError> {
        let topic = self.topic(topic)?;
        for r in &records {
            let key_len = r.key.as_ref().map_or(0, Vec::len);
            let size = key_len.max(r.payload.len()).max(headers_len(r));
            if size > MAX_RECORD_BYTES {
                return Err(BusError::TooLarge {
                    size,
                    max: MAX_RECORD_BYTES,
                });
            }
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let dir = self.inner.dir.clone();
        blocking(move || topic.append_blocking(&dir, &records)).await
    }

    /// Offset the next append to `topic` will get (= number of records in it).
    pub fn end_offset(&self, topic: &str) -> i64 {
        let topics = lock(&self.inner.topics);
        topics
            .get(topic)
            .map_or(0, |t| read(&t.index).starts.len() as i64)
    }

    /// A reader of `topic` starting at `from_offset` (clamped to [0, end]). An invalid topic name
    /// surfaces as an error from [`EmbeddedReader::next_batch`].
    pub fn reader(&self, topic: &str, from_offset: i64) -> EmbeddedReader {
        let target = self.topic(topic).map_err(|_| topic.to_owned());
        let position = match &target {
            Ok(t) => from_offset.clamp(0, read(&t.index).starts.len() as i64),
            Err(_) => 0,
        };
        EmbeddedReader { target, position }
    }

    /// The topic's shared state, registered in memory on first use (its file comes with the
    /// first append) so that readers can wait on topics nobody has written to yet.
    fn topic(&self, name: &str) -> Result<Arc<Topic>, BusError> {
        check_topic(name)?;
        let mut topics = lock(&self.inner.topics);
        let topic = topics.entry(name.to_owned()).or_insert_with(|| {
            let path = self.inner.dir.join(format!("{name}.log"));
            Arc::new(Topic::new(name, path, None, Index::default()))
        });
        Ok(Arc::clone(topic))
    }
}

impl Topic {
    fn new(name: &str, path: PathBuf, file: Option<File>, index: Index) -> Self {
        Self {
            name: name.to_owned(),
            path,
            writer: Mutex::new(Writer {
                file,
                poisoned: false,
            }),
            index: RwLock::new(index),
            appended: Notify::new(),
        }
    }

    fn append_blocking(&self, dir: &Path, records: &[Outgoing]) -> Result<Vec<i64>, BusError> {
        let mut writer = lock(&self.writer);
        let Writer { file, poisoned } = &mut *writer;
        if *poisoned {
            let reason = "an earlier failed append could not be rolled back; reopen the log";
            return Err(io_err(&self.path)(io::Error::other(reason)));
        }
        let file = match file {
            Some(file) => file,
            None => file.insert(create_topic_file(dir, &self.path)?),
        };
        let (old_end, first) = {
            let index = read(&self.index);
            (index.end, index.starts.len())
        };
        let mut buf = Vec::new();
        let mut starts = Vec::with_capacity(records.len());
        for record in records {
            starts.push(old_end + buf.len() as u64);
            encode(&mut buf, record);
        }
        // Writing at the indexed end (not O_APPEND) keeps the file and the index in step.
        let written = file
            .seek(SeekFrom::Start(old_end))
            .and_then(|_| file.write_all(&buf))
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Cut the partial batch off so the next append does not land behind garbage.
            if file
                .set_len(old_end)
                .and_then(|()| file.sync_data())
                .is_err()
            {
                *poisoned = true;
            }
            return Err(io_err(&self.path)(e));
        }
        {
            let mut index = write(&self.index);
            index.starts.extend(starts);
            index.end = old_end + buf.len() as u64;
        }
        self.appended.notify_waiters();
        Ok((first..first + records.len()).map(|o| o as i64).collect())
    }
}

/// Reads one topic from a position onwards, with a file handle of its own for each batch.
pub struct EmbeddedReader {
    /// The topic, or the rejected name to report on every read.
    target: Result<Arc<Topic>, String>,
    position: i64,
}

impl EmbeddedReader {
    /// Returns up to `max` records from the reader's position, waiting until at least one is
    /// available or `wait` elapses (then an empty Vec). Advances the position. Cancel-safe: the
    /// position only moves when records are returned.
    pub async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, BusError> {
        let topic = match &self.target {
            Ok(topic) => Arc::clone(topic),
            Err(name) => return Err(check_topic(name).err().unwrap_or(BusError::Closed)),
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now().checked_add(wait);
        let (start, end, count) = loop {
            // Register for the wake-up before looking, so an append in between is not missed.
            let appended = topic.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            {
                let index = read(&topic.index);
                let pos = self.position as usize;
                if pos < index.starts.len() {
                    let count = max.min(index.starts.len() - pos);
                    break (index.starts[pos], index.end, count);
                }
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, appended).await.is_err() {
                        return Ok(Vec::new());
                    }
                }
                None => appended.await,
            }
        };
        let first = self.position;
        let records = blocking(move || read_records(&topic, first, start, end, count)).await?;
        self.position += records.len() as i64;
        Ok(records)
    }

    /// Position of the next record this reader returns.
    pub fn position(&self) -> i64 {
        self.position
    }
}

fn read_records(
    topic: &Topic,
    first: i64,
    start: u64,
    end: u64,
    count: usize,
) -> Result<Vec<Record>, BusError> {
    let mut file = File::open(&topic.path).map_err(io_err(&topic.path))?;
    file.seek(SeekFrom::Start(start))
        .map_err(io_err(&topic.path))?;
    let mut reader = BufReader::new(file);
    let mut position = start;
    let mut records = Vec::with_capacity(count);
    for offset in first..first + count as i64 {
        match decode(&mut reader, end - position).map_err(io_err(&topic.path))? {
            Ok((r, size)) => {
                records.push(Record {
                    topic: topic.name.clone(),
                    partition: 0,
                    offset,
                    key: r.key,
                    payload: r.payload,
                    headers: r.headers,
                });
                position += size;
            }
            Err(reason) => {
                return Err(BusError::Corrupt {
                    path: topic.path.clone(),
                    position,
                    reason,
                });
            }
        }
    }
    Ok(records)
}

/// Reads a topic file, indexing every intact record and truncating whatever follows the last.
fn scan(path: &Path) -> Result<(File, Index), BusError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = BufReader::new(&file);
    let mut index = Index::default();
    while index.end < len {
        match decode(&mut reader, len - index.end).map_err(io_err(path))? {
            Ok((_, size)) => {
                index.starts.push(index.end);
                index.end += size;
            }
            Err(reason) => {
                tracing::warn!(
                    file = %path.display(),
                    position = index.end,
                    dropped_bytes = len - index.end,
                    %reason,
                    "truncating the torn tail of an embedded log file"
                );
                file.set_len(index.end)
                    .and_then(|()| file.sync_all())
                    .map_err(io_err(path))?;
                break;
            }
        }
    }
    Ok((file, index))
}

fn headers_len(record: &Outgoing) -> usize {
    record
        .headers
        .iter()
        .map(|(name, value)| 8 + name.len() + value.len())
        .sum()
}

fn encode(buf: &mut Vec<u8>, record: &Outgoing) {
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
fn decode(reader: &mut impl Read, available: u64) -> io::Result<Result<Decoded, String>> {
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

fn create_topic_file(dir: &Path, path: &Path) -> Result<File, BusError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))?;
    // The new directory entry must be durable too, or a crash could lose the whole topic.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(file)
}

/// Topic names become file names, so anything that could escape the directory is refused.
fn check_topic(name: &str) -> Result<(), BusError> {
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name.contains("..") {
        let reason = format!("invalid topic name {name:?}");
        return Err(BusError::Io {
            path: PathBuf::from(name),
            source: io::Error::new(io::ErrorKind::InvalidInput, reason),
        });
    }
    Ok(())
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> BusError + '_ {
    move |source| BusError::Io {
        path: path.to_owned(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BusError> + Send + 'static,
) -> Result<T, BusError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down.
        Err(_) => Err(BusError::Closed),
    }
}

// Nothing that can panic runs while these locks are held mid-update (the index changes in one
// step, after the fsync), so a poisoned lock still guards consistent data.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "sevloop.tickets.v1";

    fn rec(key: Option<&str>, payload: &str) -> Outgoing {
        Outgoing {
            key: key.map(|k| k.as_bytes().to_vec()),
            payload: payload.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }

    async fn read_all(log: &EmbeddedLog, topic: &str) -> Vec<Record> {
        let mut reader = log.reader(topic, 0);
        let mut out = Vec::new();
        loop {
            let batch = reader.next_batch(2, Duration::ZERO).await.unwrap();
            if batch.is_empty() {
                return out;
            }
            out.extend(batch);
        }
    }

    fn payloads(records: &[Record]) -> Vec<&[u8]> {
        records.iter().map(|r| r.payload.as_slice()).collect()
    }

    #[tokio::test]
    async fn appended_records_read_back_in_order_with_their_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let first = vec![rec(Some("k1"), "a"), rec(None, "b"), rec(Some(""), "")];
        assert_eq!(log.append(T, first).await.unwrap(), vec![0, 1, 2]);
        let second = vec![rec(None, "d"), rec(Some("k5"), "e")];
        assert_eq!(log.append(T, second).await.unwrap(), vec![3, 4]);
        assert_eq!(log.append(T, Vec::new()).await.unwrap(), Vec::<i64>::new());
        assert_eq!(log.end_offset(T), 5);

        let mut reader = log.reader(T, 0);
        let records = reader.next_batch(10, Duration::ZERO).await.unwrap();
        assert_eq!(reader.position(), 5);
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
        assert_eq!(payloads(&records), vec![&b"a"[..], b"b", b"", b"d", b"e"]);
        assert_eq!(records[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(records[1].key, None);
        assert_eq!(records[2].key.as_deref(), Some(&b""[..]));
        assert!(records.iter().all(|r| r.topic == T && r.partition == 0));

        let mut middle = log.reader(T, 3);
        let one = middle.next_batch(1, Duration::ZERO).await.unwrap();
        assert_eq!((one.len(), one[0].offset, middle.position()), (1, 3, 4));
    }

    #[tokio::test]
    async fn headers_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let headers = vec![
            ("sevloop.error.code".to_owned(), b"invalid".to_vec()),
            ("empty".to_owned(), Vec::new()),
        ];
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            let dead = Outgoing {
                headers: headers.clone(),
                ..rec(Some("k"), "p")
            };
            log.append("sevloop.tickets.dlq", vec![dead, rec(None, "plain")])
                .await
                .unwrap();
        }
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let records = read_all(&log, "sevloop.tickets.dlq").await;
        assert_eq!(records[0].headers, headers);
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
        assert!(records[1].headers.is_empty());
    }

    #[tokio::test]
    async fn a_reader_position_is_clamped_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        log.append(T, vec![rec(None, "a"), rec(None, "b")])
            .await
            .unwrap();
        assert_eq!(log.reader(T, -7).position(), 0);
        assert_eq!(log.reader(T, 99).position(), 2);
        assert_eq!(log.reader("nobody.wrote.here", 5).position(), 0);
        assert_eq!(log.end_offset("nobody.wrote.here"), 0);
    }

    #[tokio::test]
    async fn reopening_keeps_every_durable_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            let batch = vec![rec(Some("k"), "one"), rec(None, "two")];
            log.append(T, batch).await.unwrap();
            log.append(T, vec![rec(None, "three")]).await.unwrap();
        }
        let log = EmbeddedLog::open(dir.path()).unwrap();
        assert_eq!(log.end_offset(T), 3);
        let records = read_all(&log, T).await;
        assert_eq!(payloads(&records), vec![&b"one"[..], b"two", b"three"]);
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(
            log.append(T, vec![rec(None, "four")]).await.unwrap(),
            vec![3]
        );
    }

    #[tokio::test]
    async fn a_torn_tail_is_truncated_and_later_appends_continue_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{T}.log"));
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            let batch = vec![rec(None, "a"), rec(Some("k"), "b")];
            log.append(T, batch).await.unwrap();
        }
        let good_len = std::fs::metadata(&path).unwrap().len();
        let mut half = Vec::new();
        encode(
            &mut half,
            &rec(Some("key"), "a payload cut short by kill -9"),
        );
        half.truncate(half.len() / 2);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&half).unwrap();
        drop(file);

        let log = EmbeddedLog::open(dir.path()).unwrap();
        assert_eq!(log.end_offset(T), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        assert_eq!(log.append(T, vec![rec(None, "c")]).await.unwrap(), vec![2]);
        drop(log);

        let log = EmbeddedLog::open(dir.path()).unwrap();
        let records = read_all(&log, T).await;
        assert_eq!(payloads(&records), vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(records[2].offset, 2);
    }

    #[tokio::test]
    async fn a_last_record_with_a_bad_checksum_or_trailing_garbage_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{T}.log"));
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            let batch = vec![rec(None, "keep"), rec(None, "flip")];
            log.append(T, batch).await.unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0xff;
        bytes.extend_from_slice(&[0u8; 40]);
        std::fs::write(&path, &bytes).unwrap();

        let log = EmbeddedLog::open(dir.path()).unwrap();
        assert_eq!(log.end_offset(T), 1);
        assert_eq!(payloads(&read_all(&log, T).await), vec![&b"keep"[..]]);
    }

    #[tokio::test]
    async fn a_reader_waits_for_records_appended_later() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let mut reader = log.reader(T, 0);
        let waiting = tokio::spawn(async move {
            let batch = reader
                .next_batch(10, Duration::from_secs(10))
                .await
                .unwrap();
            (batch, reader.position())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        log.append(T, vec![rec(None, "late")]).await.unwrap();
        let (batch, position) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(payloads(&batch), vec![&b"late"[..]]);
        assert_eq!(position, 1);
    }

    #[tokio::test]
    async fn a_reader_returns_nothing_once_the_wait_is_over() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let mut reader = log.reader(T, 0);
        let started = std::time::Instant::now();
        let batch = reader
            .next_batch(10, Duration::from_millis(50))
            .await
            .unwrap();
        assert!(batch.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(reader.position(), 0);
    }

    #[tokio::test]
    async fn an_oversized_record_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let too_big = MAX_RECORD_BYTES + 1;
        let huge = Outgoing {
            payload: vec![0u8; too_big],
            ..rec(None, "")
        };
        let err = log
            .append(T, vec![rec(None, "fine"), huge])
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            BusError::TooLarge { size, max } if size == too_big && max == MAX_RECORD_BYTES
        ));
        let huge_key = Outgoing {
            key: Some(vec![0u8; too_big]),
            ..rec(None, "")
        };
        let err = log.append(T, vec![huge_key]).await;
        assert!(matches!(err, Err(BusError::TooLarge { .. })));
        assert_eq!(log.end_offset(T), 0);
        let path = dir.path().join(format!("{T}.log"));
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0), 0);

        // The largest allowed payload still goes through and reads back whole.
        let biggest = Outgoing {
            payload: vec![7u8; MAX_RECORD_BYTES],
            ..rec(None, "")
        };
        assert_eq!(log.append(T, vec![biggest]).await.unwrap(), vec![0]);
        assert_eq!(read_all(&log, T).await[0].payload.len(), MAX_RECORD_BYTES);
    }

    #[tokio::test]
    async fn a_topic_name_with_a_path_separator_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        for name in ["a/b", "a\\b", "..", "../escape", ""] {
            let err = log.append(name, vec![rec(None, "x")]).await.unwrap_err();
            assert!(
                matches!(&err, BusError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidInput),
                "{name:?}: {err}"
            );
            let mut reader = log.reader(name, 0);
            let err = reader.next_batch(1, Duration::ZERO).await.unwrap_err();
            assert!(matches!(err, BusError::Io { .. }), "{name:?}: {err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn topics_are_independent() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let dlq = "sevloop.tickets.dlq";
        let tickets = vec![rec(None, "t0"), rec(None, "t1")];
        assert_eq!(log.append(T, tickets).await.unwrap(), vec![0, 1]);
        assert_eq!(
            log.append(dlq, vec![rec(None, "d0")]).await.unwrap(),
            vec![0]
        );
        assert_eq!((log.end_offset(T), log.end_offset(dlq)), (2, 1));
        assert_eq!(payloads(&read_all(&log, T).await), vec![&b"t0"[..], b"t1"]);
        let dead = read_all(&log, dlq).await;
        assert_eq!(payloads(&dead), vec![&b"d0"[..]]);
        assert_eq!(dead[0].topic, dlq);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_get_distinct_consecutive_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let mut reader = log.reader(T, 0);
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut offsets = Vec::new();
                    for i in 0..10 {
                        let batch = vec![rec(None, &format!("{task}-{i}")), rec(None, "pair")];
                        offsets.extend(log.append(T, batch).await.unwrap());
                    }
                    offsets
                })
            })
            .collect();
        let mut seen = Vec::new();
        while seen.len() < 160 {
            seen.extend(reader.next_batch(7, Duration::from_secs(5)).await.unwrap());
        }
        let mut offsets = Vec::new();
        for task in tasks {
            offsets.extend(task.await.unwrap());
        }
        offsets.sort_unstable();
        assert_eq!(offsets, (0..160).collect::<Vec<i64>>());
        assert_eq!(seen.iter().map(|r| r.offset).collect::<Vec<_>>(), offsets);
        // Each batch stays contiguous: its "pair" record directly follows its first record.
        for pair in seen.chunks(2) {
            assert_eq!(pair[1].payload, b"pair");
        }
        let reopened = EmbeddedLog::open(dir.path()).unwrap();
        assert_eq!(read_all(&reopened, T).await.len(), 160);
    }
}
