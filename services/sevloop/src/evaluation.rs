//! Running the online clustering over a labelled corpus, as `eval` and `bench` do: the same
//! features, scopes and consolidation as the pipeline, without the log and the database.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sevloop_core::{
    Catalog, ClusterConfig, Detection, Featurizer, Observation, Policy, RuleBook, Scope,
    TicketEvent,
};
use sevloop_embed::Encoder;
use sha2::{Digest, Sha256};

use crate::config::PipelineSettings;

/// Tickets in stream order with their labels (read only to score).
pub struct Corpus {
    pub tickets: Vec<TicketEvent>,
    pub labels: Vec<String>,
    /// Which tickets an incident injected (streams only).
    pub injected: Vec<bool>,
}

/// A labelled file (`{"id","text","label"}` lines) as a stream: one product, tickets
/// `3600 / per_hour` seconds apart from a fixed start, each from its own customer.
pub fn load_labelled(path: &Path, per_hour: u32) -> anyhow::Result<Corpus> {
    let rows = sevloop_eval::read_labelled(path).map_err(|e| {
        let hint = matches!(&e, sevloop_eval::EvalError::BadLine { message, .. }
            if message.contains("missing field `id`"));
        let e = anyhow::Error::new(e);
        if hint {
            e.context("a ticket stream is scored with its labels: pass --truth STREAM.truth.jsonl")
        } else {
            e
        }
    })?;
    let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")?.with_timezone(&Utc);
    let gap_ms = 3_600_000 / i64::from(per_hour.max(1));
    let mut corpus = Corpus {
        tickets: Vec::new(),
        labels: Vec::new(),
        injected: Vec::new(),
    };
    for (i, row) in rows.into_iter().enumerate() {
        let at = start + Duration::milliseconds(gap_ms * i as i64);
        let event = json!({
            "ticket_id": row.id, "event": "created", "event_time": at.to_rfc3339(),
            "subject": "", "body": row.text, "product": "eval", "component": null, "tags": [],
            "customer": {"id": format!("eval-{i}"), "tier": "free"},
            "channel": "email", "source": "eval",
        });
        let ticket = TicketEvent::from_value(event)
            .with_context(|| format!("{}: row {} is not a valid ticket", path.display(), i + 1))?;
        corpus.tickets.push(ticket);
        corpus.labels.push(row.label);
        corpus.injected.push(false);
    }
    Ok(corpus)
}

/// A log of ticket.v1 events: each ticket's first event (later ones are updates, never new
/// complaints), and the lines refused, each with its line number and reason.
pub struct Log {
    pub tickets: Vec<TicketEvent>,
    pub refused: Vec<String>,
}

pub fn load_log(path: &Path) -> anyhow::Result<Log> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let mut log = Log {
        tickets: Vec::new(),
        refused: Vec::new(),
    };
    let mut seen = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match TicketEvent::parse(line.as_bytes()) {
            Ok(t) if seen.insert(t.ticket_id.clone()) => log.tickets.push(t),
            Ok(_) => {}
            Err(e) => log.refused.push(format!("line {}: {e}", n + 1)),
        }
    }
    Ok(log)
}

/// A ticket.v1 stream and its truth file. A line that is not a valid ticket is an error here:
/// the stream is meant to be scored whole.
pub fn load_stream(path: &Path, truth: &Path) -> anyhow::Result<Corpus> {
    let log = load_log(path)?;
    if let Some(first) = log.refused.first() {
        anyhow::bail!("{}: {first}", path.display());
    }
    with_truth(log.tickets, truth)
}

/// Labels a stream's tickets from its truth file.
pub fn with_truth(tickets: Vec<TicketEvent>, truth: &Path) -> anyhow::Result<Corpus> {
    let labels = sevloop_eval::read_truth(truth)?;
    let injected = read_injected(truth)?;
    let mut corpus = Corpus {
        tickets: Vec::new(),
        labels: Vec::new(),
        injected: Vec::new(),
    };
    for ticket in tickets {
        let label = labels.get(&ticket.ticket_id).with_context(|| {
            format!(
                "{} has no label for ticket {}",
                truth.display(),
                ticket.ticket_id
            )
        })?;
        corpus.labels.push(label.clone());
        corpus
            .injected
            .push(injected.get(&ticket.ticket_id).copied().unwrap_or(false));
        corpus.tickets.push(ticket);
    }
    Ok(corpus)
}

fn read_injected(truth: &Path) -> anyhow::Result<BTreeMap<String, bool>> {
    let text = std::fs::read_to_string(truth)?;
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let (Some(id), Some(inj)) = (v["ticket_id"].as_str(), v["injected"].as_bool()) {
            out.insert(id.to_string(), inj);
        }
    }
    Ok(out)
}

/// The online pass: each ticket's final cluster (after every merge), and the time it took.
pub struct Online {
    pub clusters: Vec<String>,
    pub seconds: f64,
    /// Tickets that drift splits moved after they were assigned.
    pub moved: usize,
}

/// The clustering and detection stages without log or database: one scope per product, fed in
/// stream order, exactly as the pipeline feeds it.
pub struct OnlineClustering {
    config: ClusterConfig,
    rules: RuleBook,
    catalog: Catalog,
    policy: Policy,
    featurizer: Featurizer,
    scopes: HashMap<String, Scope>,
    observed: usize,
    /// Checkpoints are taken once per this many tickets, as the pipeline takes them once per
    /// full batch when the stream is busy.
    checkpoint_every: usize,
    stages: StageTimes,
}

/// Wall-clock time spent in each stage of [`OnlineClustering::observe`] so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Tantivy analysis, normalisation and term weights.
    pub features: std::time::Duration,
    /// Consolidation and assignment.
    pub clustering: std::time::Duration,
    /// Counting the ticket in its cluster's window and judging it.
    pub detection: std::time::Duration,
    /// Copying the changed clusters' state, once per batch.
    pub checkpoints: std::time::Duration,
}

impl std::ops::Sub for StageTimes {
    type Output = StageTimes;

    fn sub(self, earlier: StageTimes) -> StageTimes {
        StageTimes {
            features: self.features.saturating_sub(earlier.features),
            clustering: self.clustering.saturating_sub(earlier.clustering),
            detection: self.detection.saturating_sub(earlier.detection),
            checkpoints: self.checkpoints.saturating_sub(earlier.checkpoints),
        }
    }
}

impl OnlineClustering {
    /// Default detection rules and catalog.
    pub fn new(config: ClusterConfig) -> Self {
        Self::with_detection(
            config,
            RuleBook::default(),
            Catalog::default(),
            Policy::Combined,
        )
    }

    pub fn with_detection(
        config: ClusterConfig,
        rules: RuleBook,
        catalog: Catalog,
        policy: Policy,
    ) -> Self {
        OnlineClustering {
            config,
            rules,
            catalog,
            policy,
            featurizer: Featurizer::default(),
            scopes: HashMap::new(),
            observed: 0,
            checkpoint_every: PipelineSettings::default().max_batch.max(1),
            stages: StageTimes::default(),
        }
    }

    /// Clusters one new ticket and decides on it.
    pub fn observe(&mut self, ticket: &TicketEvent, dense: Option<Vec<f32>>) -> Observation {
        self.observe_explained(ticket, dense, false)
    }

    /// [`OnlineClustering::observe`], with the verdict of the ticket's window even when it
    /// could not fire if `explain` (see [`Detection::explain`]).
    pub fn observe_explained(
        &mut self,
        ticket: &TicketEvent,
        dense: Option<Vec<f32>>,
        explain: bool,
    ) -> Observation {
        let began = Instant::now();
        let features = sevloop_core::ticket_features(&mut self.featurizer, ticket, dense);
        let featurized = Instant::now();
        let config = &self.config;
        let scope = self
            .scopes
            .entry(ticket.product.clone())
            .or_insert_with(|| Scope::restore(&ticket.product, config.clone(), Vec::new()));
        let detection = Detection {
            rules: &self.rules,
            catalog: &self.catalog,
            policy: self.policy,
            explain,
        };
        let clustered = scope.assign(&features, ticket);
        let assigned = Instant::now();
        let observation = scope.decide(clustered, ticket, &detection);
        let decided = Instant::now();
        self.observed += 1;
        if self.observed.is_multiple_of(self.checkpoint_every) {
            for scope in self.scopes.values_mut() {
                scope.take_touched();
            }
        }
        self.stages.features += featurized - began;
        self.stages.clustering += assigned - featurized;
        self.stages.detection += decided - assigned;
        self.stages.checkpoints += decided.elapsed();
        observation
    }

    /// Time spent in each stage so far.
    pub fn stage_times(&self) -> StageTimes {
        self.stages
    }

    /// A product's clusters.
    pub fn scope(&self, product: &str) -> Option<&Scope> {
        self.scopes.get(product)
    }

    /// The live cluster a ticket assigned to `seq` belongs to now (after merges).
    pub fn final_cluster(&self, product: &str, seq: u64) -> String {
        let live = self
            .scopes
            .get(product)
            .map_or(seq, |s| s.clusterer().resolve(seq));
        sevloop_core::cluster::cluster_id(product, live)
    }

    /// Live clusters' checkpoints, in JSON as the store writes them: mean bytes per cluster.
    pub fn checkpoint_bytes(&self) -> f64 {
        let sizes: Vec<usize> = self
            .scopes
            .values()
            .flat_map(|s| s.clusterer().clusters())
            .map(|c| serde_json::to_vec(c).map_or(0, |b| b.len()))
            .collect();
        sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64
    }

    /// Live clusters across products.
    pub fn clusters(&self) -> usize {
        self.scopes.values().map(|s| s.clusterer().len()).sum()
    }

    /// Clusters created, merged away, and kept as aliases, across products.
    pub fn churn(&self) -> (u64, usize, usize) {
        self.scopes
            .values()
            .fold((0, 0, 0), |(created, merged, aliases), s| {
                let c = s.clusterer();
                (
                    created + c.created(),
                    merged + c.merged_away(),
                    aliases + c.aliases().count(),
                )
            })
    }
}

/// Clusters the corpus in order and reports each ticket's final cluster.
pub fn run_online(
    corpus: &Corpus,
    dense: Option<&[Vec<f32>]>,
    config: &ClusterConfig,
    mut progress: impl FnMut(usize),
) -> Online {
    let mut online = OnlineClustering::new(config.clone());
    let mut placements = Placements::default();
    let started = Instant::now();
    for (i, ticket) in corpus.tickets.iter().enumerate() {
        let observation = online.observe(ticket, dense.map(|d| d[i].clone()));
        placements.note(ticket, &observation);
        if (i + 1) % 2000 == 0 {
            progress(i + 1);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let moved = placements.moved;
    Online {
        clusters: placements.finish(&corpus.tickets, &online),
        seconds,
        moved,
    }
}

/// Each ticket's cluster as a stream is observed, in stream order, following the tickets a
/// drift split moves after they were assigned.
#[derive(Default)]
pub struct Placements<'a> {
    assigned: Vec<u64>,
    /// Where each ticket is in `assigned`, by product and ticket id.
    index: HashMap<(&'a str, &'a str), usize>,
    /// Tickets that drift splits moved.
    pub moved: usize,
}

impl<'a> Placements<'a> {
    /// Notes where `ticket`, the next of the stream, went, and where its observation moved
    /// earlier tickets of its product.
    pub fn note(&mut self, ticket: &'a TicketEvent, observation: &Observation) {
        self.moved += observation.moved.len();
        for (ticket_id, seq) in &observation.moved {
            if let Some(j) = self
                .index
                .get(&(ticket.product.as_str(), ticket_id.as_str()))
            {
                self.assigned[*j] = *seq;
            }
        }
        self.index
            .insert((&ticket.product, &ticket.ticket_id), self.assigned.len());
        self.assigned.push(observation.seq);
    }

    /// Each ticket's live cluster at the end (after merges), in the order noted.
    pub fn finish(self, tickets: &[TicketEvent], online: &OnlineClustering) -> Vec<String> {
        tickets
            .iter()
            .zip(self.assigned)
            .map(|(t, seq)| online.final_cluster(&t.product, seq))
            .collect()
    }
}

/// Sentence vectors of tickets (their masked text), through the embedding cache.
pub fn embed_tickets(
    tickets: &[TicketEvent],
    model_dir: Option<&Path>,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let dir = model_dir.map_or_else(sevloop_embed::default_model_dir, Path::to_path_buf);
    let encoder = Encoder::load(&dir)
        .context("semantic features need the model (or pass --features lexical)")?;
    let texts: Vec<String> = tickets.iter().map(sevloop_core::embedding_text).collect();
    embed_cached(&encoder, &texts, &default_cache_dir())
}

/// Sentence vectors for `texts`, from a cache file when this model has embedded the same set of
/// distinct texts before (embedding is the expensive step; evaluation and benchmarks reuse it).
/// Keyed by the set, not the sequence: streams resampled from one dataset are reorderings of the
/// same texts, so they share one cache file, and a repeated text is embedded once.
pub fn embed_cached(
    encoder: &Encoder,
    texts: &[String],
    cache_dir: &Path,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let distinct: Vec<&str> = texts
        .iter()
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let vectors = embed_distinct(encoder, &distinct, cache_dir)?;
    let place: HashMap<&str, usize> = distinct.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    Ok(texts
        .iter()
        .map(|t| vectors[place[t.as_str()]].clone())
        .collect())
}

fn embed_distinct(
    encoder: &Encoder,
    texts: &[&str],
    cache_dir: &Path,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let path = cache_path(encoder, texts, cache_dir);
    if let Some(vectors) = read_cache(&path, texts.len(), encoder.dim()) {
        eprintln!("embeddings: {} from cache {}", texts.len(), path.display());
        return Ok(vectors);
    }
    let started = Instant::now();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(1024) {
        out.extend(encoder.encode(chunk)?);
        let rate = out.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "embeddings: {}/{} ({rate:.0} texts/s)",
            out.len(),
            texts.len()
        );
    }
    write_cache(&path, &out).with_context(|| format!("write {}", path.display()))?;
    Ok(out)
}

fn cache_path(encoder: &Encoder, texts: &[&str], dir: &Path) -> PathBuf {
    let mut h = Sha256::new();
    for t in texts {
        h.update(t.as_bytes());
        h.update([0u8]);
    }
    let digest: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join(format!("{}-{digest}.f32", encoder.model_id()))
}

fn read_cache(path: &Path, n: usize, dim: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() != n * dim * 4 {
        return None;
    }
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(floats.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

fn write_cache(path: &Path, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for x in vectors.iter().flatten() {
        f.write_all(&x.to_le_bytes())?;
    }
    f.into_inner()?.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Where `eval` and `bench` keep embeddings: `$SEVLOOP_CACHE_DIR` or `~/.cache/sevloop`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("SEVLOOP_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sevloop")))
        .unwrap_or_else(|| PathBuf::from(".sevloop-cache"))
        .join("embeddings")
}
