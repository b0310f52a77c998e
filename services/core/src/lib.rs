//! The pure core of sevloop: the ticket contract, text features, clustering, detection, severity
//! and routing. No I/O, no clocks, no async: every decision is a function of the tickets and their
//! event times, so a replay gives the same result. Adapters (SQL, Kafka, tantivy, HTTP) live in
//! the other crates.

pub mod cluster;
pub mod detect;
pub mod redact;
pub mod routing;
pub mod scope;
pub mod sev;
pub mod text;
pub mod ticket;

pub use cluster::corrections::Correction;
pub use cluster::{Assignment, Cluster, ClusterConfig, Features};
pub use detect::{Decision, DetectorState, Escalation, FloorRule};
pub use routing::{Catalog, Route, RouteInput};
pub use scope::{
    embedding_text, ticket_features, ClusterCheckpoint, CorrectionError, Observation, Scope,
};
pub use sev::{SevState, Severity};
pub use text::Featurizer;
pub use ticket::{Customer, EventKind, TicketError, TicketEvent, Tier};
