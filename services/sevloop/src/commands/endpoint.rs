//! `endpoint`: the notification endpoints a 410 Gone disabled, and enabling one again.

use crate::cli::EndpointCommand;
use crate::commands::open;

pub async fn run(command: EndpointCommand) -> anyhow::Result<()> {
    match command {
        EndpointCommand::List(database) => {
            for e in open(&database).await?.disabled_endpoints().await? {
                println!(
                    "{}\tdisabled {}\t{} waiting\t{}",
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
