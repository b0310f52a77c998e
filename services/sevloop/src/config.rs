//! Settings: typed, unknown keys refused, read from a TOML file and then from the environment
//! (`SEVLOOP_DATABASE_URL`, `SEVLOOP_KAFKA_BROKERS`). Every default is the embedded mode's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sevloop_core::{ClusterConfig, DetectionConfig, RuleBook};

pub use crate::embedder::EncoderSettings;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the embedded mode keeps its log, database and index.
    pub data_dir: PathBuf,
    pub http: HttpSettings,
    pub kafka: Option<KafkaSection>,
    pub database: DatabaseSettings,
    pub index: IndexSettings,
    pub pipeline: PipelineSettings,
    pub clustering: ClusterConfig,
    pub encoder: EncoderSettings,
    pub detection: DetectionConfig,
    /// The ownership catalog file (teams, channels, routes); without one, every SEV goes to
    /// the `triage` team and nobody is notified. Re-read whenever it changes.
    pub catalog: Option<PathBuf>,
    pub notify: NotifySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("sevloop-data"),
            http: HttpSettings::default(),
            kafka: None,
            database: DatabaseSettings::default(),
            index: IndexSettings::default(),
            pipeline: PipelineSettings::default(),
            clustering: ClusterConfig::default(),
            encoder: EncoderSettings::default(),
            detection: DetectionConfig::default(),
            catalog: None,
            notify: NotifySettings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Base URL of the dashboard, used in links inside notifications.
    pub public_url: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
        }
    }
}

impl HttpSettings {
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSection {
    pub brokers: String,
    pub group_id: String,
    pub auto_offset_reset: String,
    /// Stable id of this instance in the consumer group (static membership); one per instance.
    pub instance_id: Option<String>,
}

impl Default for KafkaSection {
    fn default() -> Self {
        KafkaSection {
            brokers: "127.0.0.1:9092".into(),
            group_id: "sevloop-pipeline".into(),
            auto_offset_reset: "earliest".into(),
            instance_id: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://...` or `sqlite:...`; empty means SQLite inside `data_dir`.
    pub url: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexSettings {
    /// Empty means `index/` inside `data_dir`.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    pub tickets_topic: String,
    pub dlq_topic: String,
    /// Records per transaction.
    pub max_batch: usize,
    /// How often the search index commits (it may lag the database; it catches up on restart).
    #[serde(with = "humantime_serde")]
    pub index_commit_interval: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            tickets_topic: "sevloop.tickets.v1".into(),
            dlq_topic: "sevloop.tickets.dlq".into(),
            max_batch: 500,
            index_commit_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Give up on a notification after this long (it stays visible as failed on its SEV).
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// Every SEV change and every ticket linked is published here (key: the SEV id).
    pub sev_events_topic: String,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            give_up_after: Duration::from_secs(24 * 3600),
            sev_events_topic: "sevloop.sev-events.v1".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Settings {
    /// Reads a TOML file, then applies environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut settings = match path {
            None => Settings::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
        };
        if let Some(path) = path {
            // A relative catalog path is relative to the settings file.
            if let Some(catalog) = settings.catalog.as_mut().filter(|c| c.is_relative()) {
                *catalog = path.parent().unwrap_or(Path::new(".")).join(&catalog);
            }
            let invalid = |message: String| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            };
            settings.rule_book().map_err(|e| invalid(e.to_string()))?;
            settings.clustering.validate().map_err(invalid)?;
        }
        if let Ok(url) = std::env::var("SEVLOOP_DATABASE_URL") {
            settings.database.url = url;
        }
        if let Ok(brokers) = std::env::var("SEVLOOP_KAFKA_BROKERS") {
            settings
                .kafka
                .get_or_insert_with(KafkaSection::default)
                .brokers = brokers;
        }
        Ok(settings)
    }

    /// The detection rules, resolved per product and team (validated at load).
    pub fn rule_book(&self) -> Result<RuleBook, sevloop_core::detect::RuleError> {
        self.detection.rule_book()
    }

    /// The embedded mode in `data_dir`, which keeps everything there: a catalog there (the
    /// demo writes one) is used when the settings name none.
    pub fn embedded_in(&mut self, data_dir: PathBuf) {
        let beside = data_dir.join("catalog.toml");
        if self.catalog.is_none() && beside.is_file() {
            self.catalog = Some(beside);
        }
        self.data_dir = data_dir;
    }

    /// The embedded mode's database file.
    pub fn embedded_database(&self) -> PathBuf {
        self.data_dir.join("sevloop.db")
    }

    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.embedded_database().display())
        } else {
            self.database.url.clone()
        }
    }

    pub fn index_dir(&self) -> PathBuf {
        self.index
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("index"))
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/sevloop.example.toml"
        ));
        let s = Settings::load(Some(path)).unwrap();
        assert!(s.kafka.is_some());
        assert!(s.database.url.starts_with("postgres://"));
        assert!(s.encoder.enabled);
        assert_eq!(s.clustering.consolidation.stray_size, 4);
        assert_eq!(
            s.clustering.consolidation.every,
            Duration::from_secs(15 * 60)
        );
        // What it shows as the clustering and detection settings are the code's defaults.
        assert_eq!(s.clustering, ClusterConfig::default());
        let rules = s.rule_book().unwrap();
        assert_eq!(rules.default, sevloop_core::Rules::default());
        assert_eq!(rules.products["cards"].floor.min_tickets, 5);
        assert!(s
            .catalog
            .is_some_and(|c| c.ends_with("deploy/catalog.example.toml")));
    }

    #[test]
    fn an_unknown_key_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[detection.floor]\nmin_tickts = 3\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("min_tickts"), "{err}");
    }

    #[test]
    fn settings_nothing_could_work_with_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        for (text, named) in [
            (
                "[clustering]\nsemantic_threshold = 5.0\n",
                "semantic_threshold",
            ),
            ("[clustering.consolidation]\nevery = \"0s\"\n", "every"),
            ("[detection.floor]\nmin_tickets = 0\n", "min_tickets"),
            ("[detection.floor]\nmin_customers = -3\n", "min_customers"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Settings::load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
    }

    #[test]
    fn the_embedded_mode_uses_a_catalog_in_its_data_directory_unless_the_settings_name_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::load(None).unwrap();
        s.embedded_in(dir.path().to_path_buf());
        assert_eq!(s.catalog, None, "no catalog there yet");
        let beside = dir.path().join("catalog.toml");
        std::fs::write(&beside, "").unwrap();
        let mut s = Settings::load(None).unwrap();
        s.embedded_in(dir.path().to_path_buf());
        assert_eq!(s.catalog, Some(beside));
        assert_eq!(s.data_dir, dir.path());
        let named = dir.path().join("named.toml");
        let mut s = Settings::load(None).unwrap();
        s.catalog = Some(named.clone());
        s.embedded_in(dir.path().to_path_buf());
        assert_eq!(s.catalog, Some(named), "the settings' own catalog wins");
    }

    #[test]
    fn a_duration_must_be_human_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[detection.floor]\nwindow = \"soon\"\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("window"), "{err}");
    }
}
