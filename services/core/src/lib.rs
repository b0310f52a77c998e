//! The pure core of sevloop: the ticket contract, text features, clustering, detection, severity
//! and routing. No I/O, no clocks, no async: every decision is a function of the tickets and their
//! event times, so a replay gives the same result. Adapters (SQL, Kafka, tantivy, HTTP) live in
//! the other crates.

pub mod access;
pub mod catalog;
pub mod cluster;
pub mod detect;
pub mod redact;
pub mod scope;
pub mod sev;
pub mod text;
pub mod ticket;

/// Header that marks a record of the ticket log that is not a ticket; its value names the
/// record's kind and version (a cluster correction, a SEV action).
pub const RECORD_HEADER: &str = "sevloop.record";

pub use catalog::{Catalog, CatalogError, CatalogSummary, Route, RouteInput};
pub use cluster::corrections::Correction;
pub use cluster::{Assignment, Cluster, ClusterConfig, Features, Placement};
pub use detect::{
    Decision, DetectionConfig, DetectorState, Escalation, Policy, RuleBook, RuleName, Rules,
    Verdict,
};
pub use scope::{
    embedding_text, ticket_features, ClusterCheckpoint, Clustered, CorrectionError, Detection,
    Observation, Scope,
};
pub use sev::{SevState, Severity};
pub use text::Featurizer;
pub use ticket::{Customer, EventKind, TicketError, TicketEvent, Tier};
