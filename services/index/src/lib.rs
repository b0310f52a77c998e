//! The ticket search index (tantivy).
//!
//! - `ticket_id` is a raw (untokenized) field, so an upsert is "delete term + add" in one commit.
//! - Text fields use the core's analyzer, so search and clustering agree on what a word is.
//! - Each commit's payload records the log offsets it covers; on restart the pipeline re-reads
//!   from there, and because upserts are idempotent, re-indexing a ticket never doubles it.
//!
//! All calls block (tantivy is synchronous): async callers use `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::QueryParser;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
    STRING,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

const WRITER_MEMORY: usize = 50_000_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("failed to {operation} the index at {dir}: {source}")]
    Tantivy {
        operation: &'static str,
        dir: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },
    #[error("the index at {dir} has an unreadable commit payload: {reason}")]
    Payload { dir: PathBuf, reason: String },
    #[error("failed to create the index directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the index at {dir} was opened read-only")]
    ReadOnly { dir: PathBuf },
}

/// One ticket as the index holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDoc {
    pub ticket_id: String,
    pub product: String,
    pub subject: String,
    pub body: String,
    pub cluster_id: String,
    pub event_time_ms: i64,
}

/// A log position covered by a commit: the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CoveredOffset {
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Payload {
    offsets: Vec<CoveredOffset>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub ticket_id: String,
    pub product: String,
    pub subject: String,
    pub cluster_id: String,
    pub score: f32,
}

#[derive(Clone, Copy)]
struct Fields {
    ticket_id: Field,
    product: Field,
    subject: Field,
    body: Field,
    cluster_id: Field,
    event_time: Field,
}

pub struct TicketIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    writer: Option<Mutex<IndexWriter>>,
    fields: Fields,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(sevloop_core::text::ANALYZER_NAME)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        ticket_id: b.add_text_field("ticket_id", STRING | STORED),
        product: b.add_text_field("product", STRING | STORED),
        subject: b.add_text_field("subject", text.clone()),
        body: b.add_text_field("body", text),
        cluster_id: b.add_text_field("cluster_id", STRING | STORED),
        event_time: b.add_i64_field("event_time", INDEXED | STORED | FAST),
    };
    (b.build(), fields)
}

impl TicketIndex {
    /// Opens (creating if needed) the index for writing. Only one writer may hold a directory.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        Self::open_inner(dir, true)
    }

    /// Opens an index another process writes, for search only; it follows that writer's commits.
    pub fn open_read_only(dir: &Path) -> Result<Self, IndexError> {
        Self::open_inner(dir, false)
    }

    fn open_inner(dir: &Path, write: bool) -> Result<Self, IndexError> {
        let err = |operation| {
            let dir = dir.to_path_buf();
            move |source| IndexError::Tantivy {
                operation,
                dir,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(|source| IndexError::Io {
            dir: dir.to_path_buf(),
            source,
        })?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(tantivy::TantivyError::from)
            .map_err(err("open"))?;
        let index = Index::open_or_create(directory, schema).map_err(err("open"))?;
        index.tokenizers().register(
            sevloop_core::text::ANALYZER_NAME,
            sevloop_core::text::analyzer(),
        );
        let writer = if write {
            let w = index
                .writer_with_num_threads(1, WRITER_MEMORY)
                .map_err(err("lock for writing"))?;
            Some(Mutex::new(w))
        } else {
            None
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(err("read"))?;
        Ok(TicketIndex {
            dir: dir.to_path_buf(),
            index,
            reader,
            writer,
            fields,
        })
    }

    fn tantivy(
        &self,
        operation: &'static str,
    ) -> impl FnOnce(tantivy::TantivyError) -> IndexError + '_ {
        move |source| IndexError::Tantivy {
            operation,
            dir: self.dir.clone(),
            source,
        }
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, IndexWriter>, IndexError> {
        let lock = self.writer.as_ref().ok_or_else(|| IndexError::ReadOnly {
            dir: self.dir.clone(),
        })?;
        // A poisoned lock only means another thread panicked mid-batch; the uncommitted batch is
        // discarded by the pipeline's restart path, so the writer itself is still usable.
        Ok(lock.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces (or adds) each ticket's document. Visible after the next [`commit`](Self::commit).
    pub fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        let writer = self.writer()?;
        let f = self.fields;
        for d in docs {
            writer.delete_term(Term::from_field_text(f.ticket_id, &d.ticket_id));
            writer
                .add_document(doc!(
                    f.ticket_id => d.ticket_id.as_str(),
                    f.product => d.product.as_str(),
                    f.subject => d.subject.as_str(),
                    f.body => d.body.as_str(),
                    f.cluster_id => d.cluster_id.as_str(),
                    f.event_time => d.event_time_ms,
                ))
                .map_err(self.tantivy("add a document to"))?;
        }
        Ok(())
    }

    /// Commits everything upserted so far, recording the log offsets it covers.
    pub fn commit(&self, offsets: &[CoveredOffset]) -> Result<(), IndexError> {
        let mut writer = self.writer()?;
        let payload = serde_json::to_string(&Payload {
            offsets: offsets.to_vec(),
        })
        .map_err(|e| IndexError::Payload {
            dir: self.dir.clone(),
            reason: e.to_string(),
        })?;
        let mut prepared = writer.prepare_commit().map_err(self.tantivy("commit"))?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(self.tantivy("commit"))?;
        drop(writer);
        self.reader.reload().map_err(self.tantivy("reload"))
    }

    /// The offsets the last commit covers (empty for a new index).
    pub fn committed_offsets(&self) -> Result<Vec<CoveredOffset>, IndexError> {
        let metas = self
            .index
            .load_metas()
            .map_err(self.tantivy("read metadata of"))?;
        match metas.payload {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str::<Payload>(&text)
                .map(|p| p.offsets)
                .map_err(|e| IndexError::Payload {
                    dir: self.dir.clone(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Number of ticket documents visible to search.
    pub fn doc_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Full-text search over subject and body; user syntax errors are tolerated, not fatal.
    pub fn search(&self, query: &str, limit: usize) -> Result<(usize, Vec<Hit>), IndexError> {
        let searcher = self.reader.searcher();
        let parser =
            QueryParser::for_index(&self.index, vec![self.fields.subject, self.fields.body]);
        let (query, _errors) = parser.parse_query_lenient(query);
        let (total, top) = searcher
            .search(&query, &(Count, TopDocs::with_limit(limit.max(1))))
            .map_err(self.tantivy("search"))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher
                .doc(address)
                .map_err(self.tantivy("read a document of"))?;
            let text = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            hits.push(Hit {
                ticket_id: text(self.fields.ticket_id),
                product: text(self.fields.product),
                subject: text(self.fields.subject),
                cluster_id: text(self.fields.cluster_id),
                score,
            });
        }
        Ok((total, hits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, body: &str) -> IndexDoc {
        IndexDoc {
            ticket_id: id.into(),
            product: "cards".into(),
            subject: String::new(),
            body: body.into(),
            cluster_id: "cards:1".into(),
            event_time_ms: 0,
        }
    }

    fn offsets(next: i64) -> Vec<CoveredOffset> {
        vec![CoveredOffset {
            topic: "t".into(),
            partition: 0,
            next_offset: next,
        }]
    }

    #[test]
    fn upserting_a_ticket_twice_keeps_one_document_with_the_latest_text() {
        let dir = tempfile::tempdir().unwrap();
        let index = TicketIndex::open(dir.path()).unwrap();
        index.upsert(&[doc("T-1", "card declined")]).unwrap();
        index.commit(&offsets(1)).unwrap();
        index.upsert(&[doc("T-1", "login fails")]).unwrap();
        index.commit(&offsets(2)).unwrap();
        assert_eq!(index.doc_count(), 1);
        assert_eq!(index.search("declined", 10).unwrap().0, 0);
        let (total, hits) = index.search("login", 10).unwrap();
        assert_eq!(total, 1);
        assert_eq!(hits[0].ticket_id, "T-1");
    }

    #[test]
    fn search_stems_like_clustering_does() {
        let dir = tempfile::tempdir().unwrap();
        let index = TicketIndex::open(dir.path()).unwrap();
        index
            .upsert(&[doc("T-1", "my cards were declined")])
            .unwrap();
        index.commit(&offsets(1)).unwrap();
        assert_eq!(index.search("card decline", 10).unwrap().0, 1);
    }

    #[test]
    fn the_commit_payload_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let index = TicketIndex::open(dir.path()).unwrap();
            assert!(index.committed_offsets().unwrap().is_empty());
            index.upsert(&[doc("T-1", "x")]).unwrap();
            index.commit(&offsets(7)).unwrap();
        }
        let index = TicketIndex::open(dir.path()).unwrap();
        assert_eq!(index.committed_offsets().unwrap(), offsets(7));
        assert_eq!(index.doc_count(), 1);
    }

    #[test]
    fn uncommitted_documents_are_lost_on_reopen_and_the_payload_says_where_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        {
            let index = TicketIndex::open(dir.path()).unwrap();
            index.upsert(&[doc("T-1", "x")]).unwrap();
            index.commit(&offsets(1)).unwrap();
            index.upsert(&[doc("T-2", "y")]).unwrap();
        }
        let index = TicketIndex::open(dir.path()).unwrap();
        assert_eq!(index.doc_count(), 1);
        assert_eq!(index.committed_offsets().unwrap()[0].next_offset, 1);
    }

    #[test]
    fn a_read_only_index_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        TicketIndex::open(dir.path()).unwrap();
        let ro = TicketIndex::open_read_only(dir.path()).unwrap();
        assert!(matches!(
            ro.upsert(&[doc("T", "x")]),
            Err(IndexError::ReadOnly { .. })
        ));
    }
}
