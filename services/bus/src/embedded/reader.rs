//! Reading a topic: waiting for records at the reader's position and decoding a batch of them
//! from the file on a blocking thread.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use super::codec::decode;
use super::files::check_topic;
use super::{blocking, io_err, read, EmbeddedReader, Topic};
use crate::{BusError, Record};

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
