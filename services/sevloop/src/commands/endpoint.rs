//! `endpoint`: the notification endpoints a 410 Gone disabled, and enabling one again.

use crate::catalog::CatalogHandle;
use crate::cli::EndpointCommand;
use crate::commands::{open, settings};

pub async fn run(command: EndpointCommand) -> anyhow::Result<()> {
    match command {
        EndpointCommand::List(database) => {
            let store = open(&database).await?;
            // As the admin API says: whether the settings' catalog still has the endpoint (a
            // channel that left keeps its held notifications until it comes back).
            let catalog = match settings(&database)?.catalog {
                Some(path) => Some(CatalogHandle::load(Some(&path))?.get().summary()),
                None => None,
            };
            for e in store.disabled_endpoints().await? {
                let place = match &catalog {
                    Some(c) if c.has_endpoint(&e.name) => "\tin the catalog",
                    Some(_) => "\tnot in the catalog",
                    None => "",
                };
                println!(
                    "{}\tdisabled {}\t{} waiting{place}\t{}",
                    e.name, e.disabled_at, e.waiting, e.reason
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
