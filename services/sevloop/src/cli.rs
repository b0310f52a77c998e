//! Command-line interface. Every subcommand has `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::app::Stage;
use crate::telemetry::LogFormat;

/// sevloop: turns piles of similar support tickets into SEVs for the owning team.
#[derive(Debug, Parser)]
#[command(name = "sevloop", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process with no external servers (embedded log, SQLite, local index).
    Up(UpArgs),
    /// `up` plus a replay of a bundled real dataset with an incident in it.
    Demo(DemoArgs),
    /// Run against Kafka and PostgreSQL, all stages or one.
    Serve(ServeArgs),
    /// Append a JSONL file of ticket events to the ticket log, through the API or Kafka.
    Replay(ReplayArgs),
    /// Replay generated tickets through the pipeline and print throughput and SEV latency.
    Bench(BenchArgs),
    /// Score the online clustering on labelled data (NMI, ARI, ...) beside batch baselines.
    Eval(EvalArgs),
    /// Benchmark the clustering stage alone on one thread (10k, 100k, 1M tickets).
    BenchClustering(BenchClusteringArgs),
    /// Benchmark the dashboard: page latency (p50, p95) with 100k tickets and 1,000 SEVs loaded.
    BenchPages(BenchPagesArgs),
    /// Replay a ticket log through clustering and detection: which SEVs each rule would open,
    /// when, and on which tickets (scored against a stream's truth when given).
    Backtest(BacktestArgs),
    /// The leadership numbers of the last days as email-ready HTML: printed, saved or posted.
    Digest(DigestArgs),
    /// Create, list and revoke API tokens (run `token create --role admin` for the first one).
    #[command(subcommand)]
    Token(TokenCommand),
    /// List the notification endpoints disabled by a 410 Gone, and enable one again.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// The endpoints disabled by a 410 Gone, one per line, tab-separated: name, since when,
    /// notifications waiting, whether the catalog (the settings', or the data directory's)
    /// still has it, and why.
    List(DatabaseArgs),
    /// Call a disabled endpoint again (pointing its channel at another URL in the catalog does
    /// this by itself); the dispatcher then settles what it missed.
    Enable(EndpointEnableArgs),
}

#[derive(Debug, Args)]
pub struct EndpointEnableArgs {
    /// The channel's name in the catalog (or `sevloop:helpdesk`).
    pub name: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once (only its hash is stored).
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List(DatabaseArgs),
    /// Revoke a token and end its dashboard sessions.
    Revoke(TokenRevokeArgs),
}

/// Which database: the settings file's, or the embedded mode's in a data directory.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Settings file (its `[database]` url; SEVLOOP_DATABASE_URL overrides it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The embedded mode's data directory (as given to `up --data-dir`).
    #[arg(long, conflicts_with = "config")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleName {
    Support,
    Team,
    Leadership,
    Admin,
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    #[arg(long, value_enum)]
    pub role: RoleName,
    /// The team, for --role team.
    #[arg(long, required_if_eq("role", "team"))]
    pub team: Option<String>,
    /// What the token is for (shown in lists).
    #[arg(long, default_value = "")]
    pub label: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    pub token_id: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the embedded log, database and index live (and the ownership catalog, as
    /// `catalog.toml`, when the settings name none).
    #[arg(long, default_value = "sevloop-data")]
    pub data_dir: PathBuf,
    /// Address of the API and dashboard.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Optional settings file (detection rules, routing, webhooks); `data_dir` and `listen` win.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// An empty (or new) directory for the demo's data; a fresh temporary one by default.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Tickets per second to replay.
    #[arg(long, default_value_t = 150)]
    pub rate: u32,
    /// Stop once the replay is processed instead of leaving the dashboard running.
    #[arg(long)]
    pub exit: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Settings file; see deploy/sevloop.example.toml.
    #[arg(long)]
    pub config: PathBuf,
    /// Run only this stage (scale out by running more instances of it).
    #[arg(long, value_enum)]
    pub only: Option<Stage>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["api", "kafka"])))]
pub struct ReplayArgs {
    /// JSONL file, one ticket event per line.
    pub file: PathBuf,
    /// Post to this sevloop API base URL (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub api: Option<String>,
    /// Produce straight to these Kafka brokers.
    #[arg(long)]
    pub kafka: Option<String>,
    /// Topic to produce to (with --kafka).
    #[arg(long, default_value = "sevloop.tickets.v1")]
    pub topic: String,
    /// Tickets per second; 0 means as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// A token of the support (or admin) role, for --api.
    #[arg(long, env = "SEVLOOP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Background tickets to replay before the burst.
    #[arg(long, default_value_t = 20_000)]
    pub tickets: usize,
    /// Also run against Kafka at these brokers (with --database-url).
    #[arg(long)]
    pub kafka: Option<String>,
    /// PostgreSQL server URL for the Kafka run; a fresh database is created on it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The period: this many days up to now (tickets and SEVs by event time), 1 to 36500.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i64).range(1..=36_500))]
    pub days: i64,
    /// Post `{subject, period, html}` as JSON to this URL.
    #[arg(long)]
    pub post: Option<String>,
    /// Write the HTML to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchPagesArgs {
    /// Tickets taken through the pipeline first.
    #[arg(long, default_value_t = 100_000)]
    pub tickets: usize,
    /// SEVs opened over them.
    #[arg(long, default_value_t = 1_000)]
    pub sevs: usize,
    /// Requests per page.
    #[arg(long, default_value_t = 100)]
    pub requests: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeatureSet {
    /// Sentence-encoder vectors (with terms for labels and explanations).
    Semantic,
    /// Terms only, the encoder switched off.
    Lexical,
    /// Both, side by side; the first row (semantic) is the headline.
    Both,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A labelled file of `{"id","text","label"}` lines, or a ticket.v1 stream with --truth.
    pub file: PathBuf,
    /// Truth file of a stream (`{"ticket_id","label","injected"}` lines).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Which online feature sets to run.
    #[arg(long, value_enum, default_value = "both")]
    pub features: FeatureSet,
    /// Settings file whose `[clustering]` section to use (defaults otherwise).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model directory (default: where scripts/fetch-model.sh installs it).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Arrival rate given to a labelled file's tickets (event time drives consolidation).
    #[arg(long, default_value_t = 120)]
    pub per_hour: u32,
    /// Skip the batch baselines.
    #[arg(long)]
    pub no_baselines: bool,
    /// Seed of the baselines' k-means.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// End with one JSON line of the headline figures.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchClusteringArgs {
    /// Labelled file to resample tickets from.
    #[arg(long, default_value = "../shared/data/banking77/tickets.jsonl")]
    pub file: PathBuf,
    /// Tickets in the resampled stream.
    #[arg(long, default_value_t = 1_000_000)]
    pub tickets: usize,
    #[arg(long, value_enum, default_value = "both")]
    pub features: FeatureSet,
    /// Settings file whose `[clustering]` and `[detection]` sections to use (defaults otherwise).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// A JSONL log of ticket.v1 events, in arrival order.
    pub file: PathBuf,
    /// Detection rules: a TOML file shaped like the `[detection]` section of the settings
    /// (defaults otherwise; overrides the settings file's section).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Settings file whose `[clustering]`, `[detection]` and `[routing]` sections to use.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Truth file of a generated stream: scores the SEVs against its injected incidents.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// The stream's incidents file (default: `<stream>.incidents.json` beside the truth file).
    #[arg(long)]
    pub incidents: Option<PathBuf>,
    /// Sentence-encoder vectors (default), or terms only.
    #[arg(long, value_enum, default_value = "semantic")]
    pub features: FeatureSet,
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// SEVs listed per rule alone (all are counted).
    #[arg(long, default_value_t = 5)]
    pub show: usize,
    /// End with one JSON line: each SEV with the event time it opens and its linked tickets.
    #[arg(long)]
    pub json: bool,
    /// Print how detection judged every ticket the truth file labels LABEL: its cluster, the
    /// window's counts, the usual rate, the p-value and the decision (needs --truth).
    #[arg(long, value_name = "LABEL", requires = "truth")]
    pub trace: Option<String>,
}

/// An error and its causes on one line, for the person at the terminal. Each layer's message
/// often quotes its source already ("failed to read X: No such file"), so a cause that the line
/// already says is not repeated.
pub fn report(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(crate::config::ConfigError::Read {
            path: "/nowhere.toml".into(),
            source: io,
        })
        .context("cannot start");
        assert_eq!(
            report(&error),
            "cannot start: failed to read config file /nowhere.toml: No such file or directory"
        );
    }

    #[test]
    fn a_digest_period_out_of_range_is_refused_naming_the_flag() {
        use clap::Parser;
        for days in ["--days=0", "--days=-3", "--days=100000000000"] {
            let parsed = Cli::try_parse_from(["sevloop", "digest", days]);
            let error = parsed.expect_err(days).to_string();
            assert!(error.contains("--days"), "{days}: {error}");
        }
        assert!(Cli::try_parse_from(["sevloop", "digest", "--days", "28"]).is_ok());
    }
}
