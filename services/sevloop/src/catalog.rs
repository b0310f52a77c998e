//! The catalog in use: read from its file at start (a bad file stops the start, naming the
//! line), then re-read whenever the file changes. A changed file that does not validate is
//! refused and logged, and the catalog in use stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use sevloop_core::catalog::ChannelKind;
use sevloop_core::{Catalog, CatalogError, CatalogSummary};
use sevloop_http::{CatalogAdmin, CatalogRefused};
use tokio_util::sync::CancellationToken;

/// How often the file's modification time is checked.
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum CatalogLoadError {
    #[error("failed to read catalog {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] CatalogError),
}

/// A shared, swappable catalog. Cheap to clone.
#[derive(Clone)]
pub struct CatalogHandle {
    current: Arc<RwLock<Arc<Catalog>>>,
    path: Option<PathBuf>,
}

impl CatalogHandle {
    /// The catalog of `path`, or the default one (everything to triage) without a file.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogLoadError> {
        let catalog = match path {
            Some(p) => read(p)?,
            None => Catalog::default(),
        };
        Ok(Self::fixed(catalog, path.map(Path::to_path_buf)))
    }

    fn fixed(catalog: Catalog, path: Option<PathBuf>) -> Self {
        CatalogHandle {
            current: Arc::new(RwLock::new(Arc::new(catalog))),
            path,
        }
    }

    /// The catalog in use now.
    pub fn get(&self) -> Arc<Catalog> {
        match self.current.read() {
            Ok(c) => c.clone(),
            // A writer never panics while holding the lock (it only swaps an Arc).
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether the catalog comes from a file (and can be reloaded and replaced).
    pub fn has_file(&self) -> bool {
        self.path.is_some()
    }

    /// Re-reads the file; swaps the catalog in when it validates.
    pub fn reload(&self) -> Result<(), CatalogLoadError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        self.swap(read(path)?);
        Ok(())
    }

    fn swap(&self, catalog: Catalog) {
        let catalog = Arc::new(catalog);
        match self.current.write() {
            Ok(mut c) => *c = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
    }

    /// Reloads whenever the file's modification time changes, until shutdown.
    pub async fn watch(self, shutdown: CancellationToken) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let mut seen = modified(&path);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            let now = modified(&path);
            if now == seen {
                continue;
            }
            seen = now;
            match self.reload() {
                Ok(()) => tracing::info!(path = %path.display(), "catalog reloaded"),
                Err(e) => tracing::error!(path = %path.display(), error = %e,
                    "catalog change refused; the previous catalog stays in use"),
            }
        }
    }
}

impl CatalogAdmin for CatalogHandle {
    fn summary(&self) -> CatalogSummary {
        self.get().summary()
    }

    /// Validates first; then writes a sibling file and renames it over the catalog, so the file
    /// is never half written (and the watcher, seeing it change, reads the same text again).
    fn replace(&self, text: &str) -> Result<CatalogSummary, CatalogRefused> {
        let path = self.path.as_ref().ok_or(CatalogRefused::NoFile)?;
        let catalog = parse(text, &path.display().to_string())?;
        let staged = path.with_extension("toml.new");
        std::fs::write(&staged, text)
            .and_then(|()| std::fs::rename(&staged, path))
            .map_err(|e| {
                // Best effort: a staged copy left behind would only mislead whoever looks.
                let _ = std::fs::remove_file(&staged);
                CatalogRefused::Write(e)
            })?;
        let summary = catalog.summary();
        self.swap(catalog);
        Ok(summary)
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path) -> Result<Catalog, CatalogLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogLoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse(&text, &path.display().to_string())?)
}

/// A catalog file's text, validated; `source` names it in errors.
fn parse(text: &str, source: &str) -> Result<Catalog, CatalogError> {
    let catalog = Catalog::parse(text, source)?;
    check_secrets(&catalog, source)?;
    Ok(catalog)
}

/// Signing secrets must decode now, not at the first notification.
fn check_secrets(catalog: &Catalog, source: &str) -> Result<(), CatalogError> {
    for (name, channel) in &catalog.channels {
        if channel.kind != ChannelKind::Webhook {
            continue;
        }
        for secret in &channel.secrets {
            sevloop_notify::WebhookSecret::parse(secret.expose()).map_err(|e| CatalogError {
                file: source.to_string(),
                line: None,
                message: format!("channel `{name}`: {e}"),
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "default_team = \"triage\"\n[teams.triage]\n";

    #[test]
    fn a_changed_file_is_swapped_in_and_a_broken_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.toml");
        std::fs::write(&path, GOOD).unwrap();
        let handle = CatalogHandle::load(Some(&path)).unwrap();
        assert!(handle.get().routes.is_empty());

        let routed =
            format!("{GOOD}[teams.cards]\n[[routes]]\nteam = \"cards\"\nproduct = \"cards\"\n");
        std::fs::write(&path, routed).unwrap();
        handle.reload().unwrap();
        assert_eq!(handle.get().routes.len(), 1);

        std::fs::write(&path, format!("{GOOD}[[routes]]\nteam = \"nobody\"\n")).unwrap();
        let err = handle.reload().unwrap_err().to_string();
        assert!(err.contains("line 4") && err.contains("nobody"), "{err}");
        assert_eq!(handle.get().routes.len(), 1, "the previous catalog stays");
    }

    #[test]
    fn the_example_catalog_loads() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/catalog.example.toml"
        ));
        let catalog = CatalogHandle::load(Some(path)).unwrap().get();
        assert_eq!(catalog.default_team, "triage");
        assert!(catalog.helpdesk.is_some());
        assert_eq!(catalog.channels_of("cards").len(), 3);
    }

    #[test]
    fn a_webhook_secret_that_does_not_decode_stops_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.toml");
        let text = format!(
            "{GOOD}[channels.ops]\nkind = \"webhook\"\nurl = \"http://x\"\nsecrets = [\"whsec_!!\"]\n"
        );
        std::fs::write(&path, text).unwrap();
        let err = CatalogHandle::load(Some(&path)).err().unwrap().to_string();
        assert!(err.contains("ops"), "{err}");
    }
}
