//! The ownership catalog: which team owns a complaint, how each team is told, and who hears
//! about a SEV nobody acknowledged. Read from a TOML file, validated at load with errors that
//! name the line, and swapped in whole when the file changes.
//!
//! Routing: the first route whose every given matcher matches wins (product, component, any of
//! the tags, any of the keywords in the cluster's label); otherwise the default (triage) team.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A secret from the catalog (a routing key, a signing secret, an API token). Never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// How a channel wants to be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// PagerDuty Events API v2; needs `routing_key`.
    Pagerduty,
    /// Alertmanager webhook v4 compatible JSON.
    Alertmanager,
    /// Slack incoming webhook.
    Slack,
    /// Generic JSON, signed per Standard Webhooks with each of `secrets` (one at least).
    Webhook,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub kind: ChannelKind,
    pub url: String,
    #[serde(default)]
    pub routing_key: Option<Secret>,
    /// Standard Webhooks secrets (`whsec_…`); all sign, so a rotation lists old and new.
    #[serde(default)]
    pub secrets: Vec<Secret>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub name: String,
    pub channels: Vec<String>,
    /// Unacknowledged this long after opening, a SEV escalates to `escalate_to`.
    pub ack_timeout: Duration,
    pub escalate_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub team: String,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub component: Option<String>,
    /// Matches when the ticket carries any of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Matches when the cluster's label contains any of these words.
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// The helpdesk that linked tickets are written back to (a Zendesk-style API).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Helpdesk {
    /// Base URL; tickets are updated with `PUT {url}/api/v2/tickets/{id}.json`.
    pub url: String,
    /// The `Authorization` header value.
    pub authorization: Option<Secret>,
    /// Stripped from sevloop ticket ids to get the helpdesk's (`ZD-48213` → `48213`).
    #[serde(default)]
    pub id_prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub default_team: String,
    pub teams: BTreeMap<String, Team>,
    pub channels: BTreeMap<String, Channel>,
    /// Channels told about every SEV, whoever owns it.
    pub broadcast: Vec<String>,
    pub routes: Vec<Route>,
    pub helpdesk: Option<Helpdesk>,
}

/// The notification endpoint of the helpdesk write-back (beside the catalog's channels).
pub const HELPDESK: &str = "sevloop:helpdesk";

/// The ack timeout of a team that does not set one.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Shorter, a SEV would escalate as it opens (and the catalog's summary shows whole seconds).
const MIN_ACK_TIMEOUT: Duration = Duration::from_secs(1);

impl Default for Catalog {
    /// Everything to triage, nobody notified: what runs without a catalog file.
    fn default() -> Self {
        let triage = Team {
            name: "triage".into(),
            channels: Vec::new(),
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            escalate_to: None,
        };
        Catalog {
            default_team: triage.name.clone(),
            teams: BTreeMap::from([(triage.name.clone(), triage)]),
            channels: BTreeMap::new(),
            broadcast: Vec::new(),
            routes: Vec::new(),
            helpdesk: None,
        }
    }
}

/// What routing looks at.
pub struct RouteInput<'a> {
    pub product: &'a str,
    pub component: Option<&'a str>,
    pub tags: &'a [String],
    pub label: &'a [String],
}

impl Route {
    fn matches(&self, input: &RouteInput) -> bool {
        let product = self.product.as_deref().is_none_or(|p| p == input.product);
        let component = self
            .component
            .as_deref()
            .is_none_or(|c| Some(c) == input.component);
        let tags = self.tags.is_empty() || self.tags.iter().any(|t| input.tags.contains(t));
        let keywords = self.keywords.is_empty()
            || self
                .keywords
                .iter()
                .any(|k| input.label.iter().any(|l| l.eq_ignore_ascii_case(k)));
        product && component && tags && keywords
    }
}

impl Catalog {
    /// The team that owns what `input` describes.
    pub fn route(&self, input: &RouteInput) -> &str {
        self.routes
            .iter()
            .find(|r| r.matches(input))
            .map_or(self.default_team.as_str(), |r| r.team.as_str())
    }

    pub fn team(&self, name: &str) -> Option<&Team> {
        self.teams.get(name)
    }

    /// The channels told about a SEV of `team`: the team's own, then the broadcast ones.
    pub fn channels_of(&self, team: &str) -> Vec<&str> {
        let own = self
            .team(team)
            .map(|t| t.channels.as_slice())
            .unwrap_or(&[]);
        let mut seen = BTreeSet::new();
        own.iter()
            .chain(&self.broadcast)
            .filter(|c| seen.insert(c.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// Parses and validates a catalog file. `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| CatalogError {
            file: source.to_string(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_string(),
        })?;
        raw.validate(text, source)
    }
}

/// What an admin sees of the catalog in use: everything that decides ownership and escalation,
/// nothing secret (no URLs, routing keys or signing secrets).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogSummary {
    pub default_team: String,
    pub teams: Vec<TeamSummary>,
    pub channels: Vec<ChannelSummary>,
    pub broadcast: Vec<String>,
    pub routes: Vec<Route>,
    /// Whether linked tickets are written back to a helpdesk.
    pub helpdesk: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamSummary {
    pub name: String,
    pub channels: Vec<String>,
    pub ack_timeout_seconds: u64,
    pub escalate_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelSummary {
    pub name: String,
    pub kind: ChannelKind,
    /// Standard Webhooks secrets in use (two during a rotation).
    pub signing_secrets: usize,
}

impl CatalogSummary {
    /// Whether notifications can go to `endpoint` under this catalog: one of its channels, or
    /// the helpdesk write-back when it has a helpdesk.
    pub fn has_endpoint(&self, endpoint: &str) -> bool {
        self.channels.iter().any(|c| c.name == endpoint) || (self.helpdesk && endpoint == HELPDESK)
    }
}

impl Catalog {
    pub fn summary(&self) -> CatalogSummary {
        CatalogSummary {
            default_team: self.default_team.clone(),
            teams: self
                .teams
                .values()
                .map(|t| TeamSummary {
                    name: t.name.clone(),
                    channels: t.channels.clone(),
                    ack_timeout_seconds: t.ack_timeout.as_secs(),
                    escalate_to: t.escalate_to.clone(),
                })
                .collect(),
            channels: self
                .channels
                .iter()
                .map(|(name, c)| ChannelSummary {
                    name: name.clone(),
                    kind: c.kind,
                    signing_secrets: c.secrets.len(),
                })
                .collect(),
            broadcast: self.broadcast.clone(),
            routes: self.routes.clone(),
            helpdesk: self.helpdesk.is_some(),
        }
    }
}

/// A catalog that cannot be used, with where the problem is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct CatalogError {
    /// The file (or other source) the catalog came from.
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    default_team: Spanned<String>,
    #[serde(default)]
    broadcast: Vec<Spanned<String>>,
    #[serde(default)]
    teams: BTreeMap<String, RawTeam>,
    #[serde(default)]
    channels: BTreeMap<String, Channel>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    helpdesk: Option<Helpdesk>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    #[serde(default)]
    channels: Vec<Spanned<String>>,
    #[serde(default, with = "humantime_serde::option")]
    ack_timeout: Option<Duration>,
    #[serde(default)]
    escalate_to: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    team: Spanned<String>,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    keywords: Vec<String>,
}

impl RawCatalog {
    fn validate(self, text: &str, source: &str) -> Result<Catalog, CatalogError> {
        let fail = |at: &Spanned<String>, message: String| CatalogError {
            file: source.to_string(),
            line: Some(line_of(text, at.span().start)),
            message,
        };
        let team_known = |t: &Spanned<String>, what: &str| {
            if self.teams.contains_key(t.get_ref()) {
                Ok(())
            } else {
                Err(fail(
                    t,
                    format!(
                        "{what} names team `{}`, which has no [teams.{}] table",
                        t.get_ref(),
                        t.get_ref()
                    ),
                ))
            }
        };
        let channel_known = |c: &Spanned<String>, what: &str| {
            if self.channels.contains_key(c.get_ref()) {
                Ok(())
            } else {
                Err(fail(
                    c,
                    format!(
                        "{what} names channel `{}`, which has no [channels.{}] table",
                        c.get_ref(),
                        c.get_ref()
                    ),
                ))
            }
        };
        team_known(&self.default_team, "default_team")?;
        for c in &self.broadcast {
            channel_known(c, "broadcast")?;
        }
        for (name, team) in &self.teams {
            if team.ack_timeout.is_some_and(|t| t < MIN_ACK_TIMEOUT) {
                return Err(CatalogError {
                    file: source.to_string(),
                    line: find_table(text, "teams", name),
                    message: format!(
                        "team `{}`: `ack_timeout` must be at least 1s (the time the team has \
                         to acknowledge before its SEVs escalate)",
                        name.escape_debug()
                    ),
                });
            }
            for c in &team.channels {
                channel_known(c, &format!("team `{name}`"))?;
            }
            if let Some(target) = &team.escalate_to {
                team_known(target, &format!("team `{name}` escalate_to"))?;
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            team_known(&route.team, &format!("route {}", i + 1))?;
        }
        for (name, channel) in &self.channels {
            // The name goes out in headers (idempotency keys) and admin URLs.
            let named = if name.is_empty() || name.chars().any(char::is_control) {
                Err("a channel's name must be non-empty, without control characters".to_string())
            } else {
                channel.validate()
            };
            named.map_err(|message| CatalogError {
                file: source.to_string(),
                line: find_table(text, "channels", name),
                message: format!("channel `{}`: {message}", name.escape_debug()),
            })?;
        }
        Ok(self.into_catalog())
    }

    fn into_catalog(self) -> Catalog {
        let names = |v: Vec<Spanned<String>>| v.into_iter().map(Spanned::into_inner).collect();
        Catalog {
            default_team: self.default_team.into_inner(),
            teams: self
                .teams
                .into_iter()
                .map(|(name, t)| {
                    let team = Team {
                        name: name.clone(),
                        channels: names(t.channels),
                        ack_timeout: t.ack_timeout.unwrap_or(DEFAULT_ACK_TIMEOUT),
                        escalate_to: t.escalate_to.map(Spanned::into_inner),
                    };
                    (name, team)
                })
                .collect(),
            channels: self.channels,
            broadcast: names(self.broadcast),
            routes: self
                .routes
                .into_iter()
                .map(|r| Route {
                    team: r.team.into_inner(),
                    product: r.product,
                    component: r.component,
                    tags: r.tags,
                    keywords: r.keywords,
                })
                .collect(),
            helpdesk: self.helpdesk,
        }
    }
}

impl Channel {
    fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err("`url` must start with http:// or https://".into());
        }
        match (self.kind, &self.routing_key) {
            (ChannelKind::Pagerduty, None) => Err("a pagerduty channel needs `routing_key`".into()),
            // PagerDuty answers 400 to any other length, so every page would be given up.
            (ChannelKind::Pagerduty, Some(key)) if key.expose().chars().count() != 32 => {
                Err(format!(
                    "`routing_key` must be the integration's 32-character key (this one has {})",
                    key.expose().chars().count()
                ))
            }
            // Unsigned, a receiver could not tell sevloop's events from anyone's.
            (ChannelKind::Webhook, _) if self.secrets.is_empty() => Err(
                "a webhook channel needs `secrets`: at least one Standard Webhooks secret \
                 (whsec_…) its receiver verifies signatures with"
                    .into(),
            ),
            (ChannelKind::Webhook, _) => self
                .secrets
                .iter()
                .all(|s| s.expose().starts_with("whsec_"))
                .then_some(())
                .ok_or_else(|| "`secrets` must be Standard Webhooks secrets (whsec_…)".into()),
            _ => Ok(()),
        }
    }
}

/// The line of a `[table.name]` header, for errors about a whole table.
fn find_table(text: &str, table: &str, name: &str) -> Option<usize> {
    let headers = [format!("[{table}.{name}]"), format!("[{table}.\"{name}\"]")];
    text.lines()
        .position(|l| headers.iter().any(|h| l.trim() == h))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests;
