//! `token`: create, list and revoke API tokens. The secret of a new token is printed once;
//! only its hash is stored.

use anyhow::Context;
use sevloop_core::access::Role;
use sevloop_store::{Revoked, Store};

use crate::cli::{RoleName, TokenCommand, TokenCreateArgs};
use crate::commands::{connect, open};

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let store = connect(&args.database, true).await?;
            let (id, secret) = create(&store, &role_of(&args)?, &args.label).await?;
            eprintln!("created token {id}; keep its secret, it is not shown again:");
            println!("{secret}");
        }
        TokenCommand::List(database) => {
            for t in open(&database).await?.tokens().await? {
                let state = t
                    .revoked_at
                    .map_or("live".to_string(), |at| format!("revoked {at}"));
                println!("{}\t{}\t{}\t{state}", t.token_id, t.role.actor(), t.label);
            }
        }
        TokenCommand::Revoke(args) => {
            let store = open(&args.database).await?;
            match store
                .revoke_token(&args.token_id, chrono::Utc::now())
                .await?
            {
                Revoked::Done => {}
                Revoked::NoSuchToken => anyhow::bail!("there is no live token {}", args.token_id),
                Revoked::LastAdmin => anyhow::bail!(
                    "{} is the last admin token; create another admin token first",
                    args.token_id
                ),
            }
            eprintln!("revoked {}", args.token_id);
        }
    }
    Ok(())
}

/// Creates a token with `role`; returns its id and secret.
pub async fn create(store: &Store, role: &Role, label: &str) -> anyhow::Result<(String, String)> {
    let (id, secret) = sevloop_http::auth::new_token();
    let hash = sevloop_http::auth::hash(&secret);
    store
        .create_token(&id, &hash, role, label, chrono::Utc::now())
        .await?;
    Ok((id, secret))
}

fn role_of(args: &TokenCreateArgs) -> anyhow::Result<Role> {
    let name = match args.role {
        RoleName::Support => "support",
        RoleName::Team => "team",
        RoleName::Leadership => "leadership",
        RoleName::Admin => "admin",
    };
    Role::parse(name, args.team.as_deref()).with_context(|| match (name, &args.team) {
        ("team", None) => "--role team needs --team NAME".to_string(),
        ("team", Some(t)) => format!("--team {t:?} is not a team name"),
        _ => format!("--team is only for --role team, not --role {name}"),
    })
}
