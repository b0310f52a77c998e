//! The topic files themselves: which names may become files, creating one durably on the first
//! append, and scanning one on open to index its intact records and cut off a torn tail.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use super::codec::decode;
use super::{io_err, Index};
use crate::BusError;

/// Reads a topic file, indexing every intact record and truncating whatever follows the last.
pub(super) fn scan(path: &Path) -> Result<(File, Index), BusError> {
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

pub(super) fn create_topic_file(dir: &Path, path: &Path) -> Result<File, BusError> {
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
pub(super) fn check_topic(name: &str) -> Result<(), BusError> {
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name.contains("..") {
        let reason = format!("invalid topic name {name:?}");
        return Err(BusError::Io {
            path: PathBuf::from(name),
            source: io::Error::new(io::ErrorKind::InvalidInput, reason),
        });
    }
    Ok(())
}
