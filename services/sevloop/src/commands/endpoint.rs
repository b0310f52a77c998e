//! `endpoint`: the notification endpoints a 410 Gone disabled, and enabling one again.

use std::path::Path;

use sevloop_core::catalog::CatalogSummary;

use crate::catalog::CatalogHandle;
use crate::cli::EndpointCommand;
use crate::commands::{open, settings, store_of};

pub async fn run(command: EndpointCommand) -> anyhow::Result<()> {
    match command {
        EndpointCommand::List(database) => {
            let settings = settings(&database)?;
            let store = store_of(&settings, false).await?;
            let catalog = Known::of(settings.catalog.as_deref());
            for e in store.disabled_endpoints().await? {
                println!(
                    "{}\tdisabled {}\t{} waiting\t{}\t{}",
                    e.name,
                    e.disabled_at,
                    e.waiting,
                    catalog.column(&e.name),
                    e.reason
                );
            }
        }
        EndpointCommand::Enable(args) => {
            let store = open(&args.database).await?;
            if !store.enable_endpoint(&args.name, None).await? {
                anyhow::bail!("endpoint {} is not disabled", args.name);
            }
            eprintln!(
                "enabled {}: the dispatcher sends to it again and, within seconds, settles what it missed",
                args.name
            );
        }
    }
    Ok(())
}

/// What the list knows of the catalog in use.
enum Known {
    /// The settings name no catalog file.
    NoCatalog,
    /// It cannot be read or is not valid: the server keeps its last good catalog then, and the
    /// list is still worth having.
    Unreadable,
    Catalog(CatalogSummary),
}

impl Known {
    fn of(path: Option<&Path>) -> Known {
        let Some(path) = path else {
            return Known::NoCatalog;
        };
        match CatalogHandle::load(Some(path)) {
            Ok(catalog) => Known::Catalog(catalog.get().summary()),
            Err(e) => {
                eprintln!("warning: {e}; listing without it");
                Known::Unreadable
            }
        }
    }

    /// Whether the catalog still has `endpoint` (a channel that left keeps its held
    /// notifications until it comes back).
    fn column(&self, endpoint: &str) -> &'static str {
        match self {
            Known::NoCatalog => "no catalog",
            Known::Unreadable => "catalog unreadable",
            Known::Catalog(c) if c.has_endpoint(endpoint) => "in the catalog",
            Known::Catalog(_) => "not in the catalog",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_column_says_what_is_known_and_a_bad_catalog_does_not_stop_the_list() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(Known::of(None).column("hook"), "no catalog");
        let missing = dir.path().join("missing.toml");
        assert_eq!(
            Known::of(Some(&missing)).column("hook"),
            "catalog unreadable"
        );
        let invalid = dir.path().join("invalid.toml");
        std::fs::write(&invalid, "[teams.ops\n").expect("write");
        assert_eq!(
            Known::of(Some(&invalid)).column("hook"),
            "catalog unreadable"
        );
        let example = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/catalog.example.toml"
        ));
        let known = Known::of(Some(example));
        let Known::Catalog(summary) = &known else {
            panic!("the example catalog loads");
        };
        let channel = &summary.channels[0].name;
        assert_eq!(known.column(channel), "in the catalog");
        assert_eq!(known.column("gone-channel"), "not in the catalog");
    }
}
