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
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::Notify;

use crate::{BusError, Outgoing};

mod codec;
mod files;
mod reader;

use codec::{encode, headers_len};
use files::{check_topic, create_topic_file, scan};

/// Largest payload accepted (bytes); bigger appends fail with [`BusError::TooLarge`].
/// Keys and encoded headers are held to the same limit so that a corrupt length can never ask for
/// a huge buffer.
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

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
mod tests;
