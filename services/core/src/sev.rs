//! SEV vocabulary: severity from impact, states, and what people do to a SEV.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ticket::is_unwelcome_control;

/// What a SEV's severity is derived from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Impact {
    pub distinct_customers: u64,
    pub enterprise_customers: u64,
    /// Distinct customers whose first linked ticket is within the last hour of event time.
    pub customers_last_hour: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    #[serde(rename = "SEV1")]
    Sev1,
    #[serde(rename = "SEV2")]
    Sev2,
    #[serde(rename = "SEV3")]
    Sev3,
    #[serde(rename = "SEV4")]
    Sev4,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Sev1 => "SEV1",
            Severity::Sev2 => "SEV2",
            Severity::Sev3 => "SEV3",
            Severity::Sev4 => "SEV4",
        }
    }

    /// Severity from impact: how many distinct customers report it, raised one level when
    /// several enterprise customers are among them and one level when it grows fast.
    ///
    /// | distinct customers | severity |
    /// |---|---|
    /// | 100 or more | SEV1 |
    /// | 30 to 99 | SEV2 |
    /// | 10 to 29 | SEV3 |
    /// | fewer | SEV4 |
    ///
    /// Three or more enterprise customers raise it one level; 20 or more new customers within
    /// the last hour of event time raise it one level; never above SEV1.
    pub fn from_impact(impact: &Impact) -> Self {
        let base = match impact.distinct_customers {
            100.. => Severity::Sev1,
            30..=99 => Severity::Sev2,
            10..=29 => Severity::Sev3,
            _ => Severity::Sev4,
        };
        let mut severity = base;
        if impact.enterprise_customers >= 3 {
            severity = severity.raised();
        }
        if impact.customers_last_hour >= 20 {
            severity = severity.raised();
        }
        severity
    }

    /// The severity a stored name stands for.
    pub fn parse(name: &str) -> Option<Severity> {
        [
            Severity::Sev1,
            Severity::Sev2,
            Severity::Sev3,
            Severity::Sev4,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    fn raised(self) -> Self {
        match self {
            Severity::Sev1 | Severity::Sev2 => Severity::Sev1,
            Severity::Sev3 => Severity::Sev2,
            Severity::Sev4 => Severity::Sev3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SevState {
    Open,
    Acknowledged,
    Mitigated,
    Resolved,
    Declined,
    Merged,
}

impl SevState {
    pub fn as_str(self) -> &'static str {
        match self {
            SevState::Open => "open",
            SevState::Acknowledged => "acknowledged",
            SevState::Mitigated => "mitigated",
            SevState::Resolved => "resolved",
            SevState::Declined => "declined",
            SevState::Merged => "merged",
        }
    }
}

impl SevState {
    pub const ALL: [SevState; 6] = [
        SevState::Open,
        SevState::Acknowledged,
        SevState::Mitigated,
        SevState::Resolved,
        SevState::Declined,
        SevState::Merged,
    ];

    /// The state a stored name stands for.
    pub fn parse(name: &str) -> Option<SevState> {
        SevState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether a person still has to act on it.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            SevState::Open | SevState::Acknowledged | SevState::Mitigated
        )
    }
}

/// Kind and version of a SEV action record on the ticket log (see [`crate::RECORD_HEADER`]).
pub const SEV_ACTION_RECORD: &str = "sev-action.v1";

/// Longest decline reason or reroute note kept.
pub const MAX_REASON_CHARS: usize = 1000;

/// What a person does to a SEV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SevAction {
    Acknowledge,
    Mitigate,
    Resolve,
    /// Not a problem, or not ours: the reason is required and stays visible on the SEV.
    Decline {
        reason: String,
    },
    /// Another team owns it; later SEVs of its cluster go there too.
    Reroute {
        team: String,
        #[serde(default)]
        note: Option<String>,
    },
    /// The same problem as another SEV.
    Merge {
        into: String,
    },
}

impl SevAction {
    pub fn kind(&self) -> &'static str {
        match self {
            SevAction::Acknowledge => "acknowledge",
            SevAction::Mitigate => "mitigate",
            SevAction::Resolve => "resolve",
            SevAction::Decline { .. } => "decline",
            SevAction::Reroute { .. } => "reroute",
            SevAction::Merge { .. } => "merge",
        }
    }

    /// The action's own fields are sound (what the API checks before accepting it).
    pub fn validate(&self) -> Result<(), TransitionError> {
        if let Some(field) = self.fields().find(|(_, v)| has_control(v)).map(|(f, _)| f) {
            return Err(TransitionError::ControlCharacter { field });
        }
        let text_ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= MAX_REASON_CHARS;
        match self {
            SevAction::Decline { reason } if !text_ok(reason) => Err(TransitionError::Reason),
            SevAction::Reroute { team, .. } if team.trim().is_empty() => {
                Err(TransitionError::NoTeam)
            }
            SevAction::Reroute { note: Some(n), .. } if !text_ok(n) => Err(TransitionError::Reason),
            _ => Ok(()),
        }
    }
}

/// Whether `s` holds a control character text may not: one stored would fail its batch on
/// PostgreSQL on every retry.
fn has_control(s: &str) -> bool {
    s.chars().any(is_unwelcome_control)
}

/// `s` with each control character [`has_control`] finds replaced by U+FFFD.
fn without_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if is_unwelcome_control(c) {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

/// Why an action does not apply to a SEV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("`{field}` holds a control character")]
    ControlCharacter { field: &'static str },
    #[error("a SEV that is {state} cannot be {action}")]
    State {
        state: &'static str,
        action: &'static str,
    },
    #[error("a reason of 1 to {MAX_REASON_CHARS} characters is required")]
    Reason,
    #[error("a team is required")]
    NoTeam,
}

impl SevState {
    /// The state after `action`. A reroute hands the SEV to a team that has not acknowledged
    /// it yet, so it is open again; merging and declining need a SEV nobody mitigated.
    pub fn after(self, action: &SevAction) -> Result<SevState, TransitionError> {
        action.validate()?;
        use SevState::*;
        let next = match (self, action) {
            (Open, SevAction::Acknowledge) => Acknowledged,
            (Open | Acknowledged, SevAction::Mitigate) => Mitigated,
            (Open | Acknowledged | Mitigated, SevAction::Resolve) => Resolved,
            (Open | Acknowledged, SevAction::Decline { .. }) => Declined,
            (Open | Acknowledged | Mitigated, SevAction::Reroute { .. }) => Open,
            (Open | Acknowledged | Mitigated, SevAction::Merge { .. }) => Merged,
            _ => {
                return Err(TransitionError::State {
                    state: self.as_str(),
                    action: action.past_tense(),
                })
            }
        };
        Ok(next)
    }
}

impl SevAction {
    /// The typed fields, by name.
    fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let fields: [Option<(&'static str, &str)>; 2] = match self {
            SevAction::Decline { reason } => [Some(("reason", reason)), None],
            SevAction::Reroute { team, note } => {
                [Some(("team", team)), note.as_deref().map(|n| ("note", n))]
            }
            SevAction::Merge { into } => [Some(("into", into)), None],
            SevAction::Acknowledge | SevAction::Mitigate | SevAction::Resolve => [None, None],
        };
        fields.into_iter().flatten()
    }

    fn without_controls(&self) -> SevAction {
        match self {
            SevAction::Decline { reason } => SevAction::Decline {
                reason: without_controls(reason),
            },
            SevAction::Reroute { team, note } => SevAction::Reroute {
                team: without_controls(team),
                note: note.as_deref().map(without_controls),
            },
            SevAction::Merge { into } => SevAction::Merge {
                into: without_controls(into),
            },
            other => other.clone(),
        }
    }

    fn past_tense(&self) -> &'static str {
        match self {
            SevAction::Acknowledge => "acknowledged",
            SevAction::Mitigate => "mitigated",
            SevAction::Resolve => "resolved",
            SevAction::Decline { .. } => "declined",
            SevAction::Reroute { .. } => "rerouted",
            SevAction::Merge { .. } => "merged",
        }
    }
}

/// An action as it travels through the ticket log, keyed by the SEV's product so it is applied
/// in order with that product's tickets (and a replay applies it at the same point).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SevActionRequest {
    /// Unique per request; the effects (timeline event, notifications) are keyed by it.
    pub action_id: String,
    pub sev_id: String,
    pub product: String,
    pub action: SevAction,
    /// The role of whoever acted (never a person's name: the timeline is blameless).
    pub actor_role: String,
    pub requested_at: DateTime<Utc>,
}

impl SevActionRequest {
    /// The request with every control character replaced: what the pipeline may store and
    /// look up. A record that differs from it is refused (the API refuses such text; a record
    /// on the log from elsewhere must not stop its partition).
    pub fn without_controls(&self) -> SevActionRequest {
        SevActionRequest {
            action_id: without_controls(&self.action_id),
            sev_id: without_controls(&self.sev_id),
            product: without_controls(&self.product),
            action: self.action.without_controls(),
            actor_role: without_controls(&self.actor_role),
            requested_at: self.requested_at,
        }
    }
}

/// What an escalation does, given the state of the cluster's latest SEV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// No SEV yet: open one.
    Open,
    /// Its SEV is still open (the episode had gone quiet): the new crossing is a recurrence,
    /// linked to that SEV, never a duplicate.
    Recur,
    /// Its SEV was resolved and the complaint is back: a regression reopens it.
    Reopen,
    /// Its SEV was declined (or merged away): a new SEV opens, linked to the earlier one, so
    /// the team sees the complaint came back after they declined it.
    OpenLinked,
}

impl Opening {
    pub fn for_latest(latest: Option<SevState>) -> Self {
        match latest {
            None => Opening::Open,
            Some(s) if s.is_open() => Opening::Recur,
            Some(SevState::Resolved) => Opening::Reopen,
            Some(_) => Opening::OpenLinked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn impact(customers: u64, enterprise: u64, last_hour: u64) -> Severity {
        Severity::from_impact(&Impact {
            distinct_customers: customers,
            enterprise_customers: enterprise,
            customers_last_hour: last_hour,
        })
    }

    #[test]
    fn severity_grows_with_distinct_customers() {
        assert_eq!(impact(5, 0, 0), Severity::Sev4);
        assert_eq!(impact(10, 0, 0), Severity::Sev3);
        assert_eq!(impact(30, 0, 0), Severity::Sev2);
        assert_eq!(impact(100, 0, 0), Severity::Sev1);
    }

    #[test]
    fn fast_growth_raises_severity_one_level() {
        assert_eq!(impact(25, 0, 20), Severity::Sev2);
        assert_eq!(impact(25, 3, 20), Severity::Sev1);
        assert_eq!(impact(25, 0, 19), Severity::Sev3);
    }

    #[test]
    fn the_lifecycle_goes_open_acknowledged_mitigated_resolved() {
        let s = SevState::Open.after(&SevAction::Acknowledge).unwrap();
        let s = s.after(&SevAction::Mitigate).unwrap();
        assert_eq!(s.after(&SevAction::Resolve), Ok(SevState::Resolved));
        assert_eq!(
            SevState::Open.after(&SevAction::Resolve),
            Ok(SevState::Resolved)
        );
    }

    #[test]
    fn a_closed_sev_refuses_every_action_saying_why() {
        for closed in [SevState::Resolved, SevState::Declined, SevState::Merged] {
            let err = closed.after(&SevAction::Acknowledge).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("a SEV that is {} cannot be acknowledged", closed.as_str())
            );
        }
        let mitigated = SevState::Mitigated;
        let decline = SevAction::Decline {
            reason: "expected".into(),
        };
        assert!(mitigated.after(&decline).is_err());
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        let nul = SevAction::Decline {
            reason: "dup\u{0}".into(),
        };
        assert_eq!(
            SevState::Open.after(&nul),
            Err(TransitionError::ControlCharacter { field: "reason" })
        );
        let note = SevAction::Reroute {
            team: "payments".into(),
            note: Some("see\u{1b}[31m".into()),
        };
        assert_eq!(
            note.validate(),
            Err(TransitionError::ControlCharacter { field: "note" })
        );
        let lines = SevAction::Decline {
            reason: "known:\n\tsee the status page\r\n".into(),
        };
        assert_eq!(lines.validate(), Ok(()), "tabs and line breaks are text");
    }

    #[test]
    fn a_request_without_controls_differs_exactly_when_it_held_one() {
        let request = |into: &str, sev_id: &str| SevActionRequest {
            action_id: "act-1".into(),
            sev_id: sev_id.into(),
            product: "cards".into(),
            action: SevAction::Merge { into: into.into() },
            actor_role: "team:cards".into(),
            requested_at: DateTime::UNIX_EPOCH,
        };
        let clean = request("SEV-2", "SEV-1");
        assert_eq!(clean.without_controls(), clean);
        for dirty in [
            request("SEV-2\u{0}", "SEV-1"),
            request("SEV-2", "SEV-\u{7f}1"),
        ] {
            let cleaned = dirty.without_controls();
            assert_ne!(cleaned, dirty);
            assert_eq!(cleaned.without_controls(), cleaned);
            assert!(!serde_json::to_string(&cleaned).unwrap().contains("\\u0000"));
        }
    }

    #[test]
    fn declining_needs_a_reason_and_rerouting_a_team() {
        let blank = SevAction::Decline {
            reason: "  ".into(),
        };
        assert_eq!(SevState::Open.after(&blank), Err(TransitionError::Reason));
        let long = SevAction::Decline {
            reason: "x".repeat(MAX_REASON_CHARS + 1),
        };
        assert_eq!(SevState::Open.after(&long), Err(TransitionError::Reason));
        let nowhere = SevAction::Reroute {
            team: "".into(),
            note: None,
        };
        assert_eq!(SevState::Open.after(&nowhere), Err(TransitionError::NoTeam));
        let reroute = SevAction::Reroute {
            team: "payments".into(),
            note: None,
        };
        assert_eq!(
            SevState::Acknowledged.after(&reroute),
            Ok(SevState::Open),
            "the new team has to acknowledge it"
        );
    }

    #[test]
    fn actions_travel_as_tagged_json() {
        let a: SevAction =
            serde_json::from_str(r#"{"kind": "decline", "reason": "known limit"}"#).unwrap();
        assert_eq!(
            a,
            SevAction::Decline {
                reason: "known limit".into()
            }
        );
        assert!(serde_json::from_str::<SevAction>(r#"{"kind": "snooze"}"#).is_err());
    }

    #[test]
    fn an_escalation_opens_recurs_reopens_or_links_by_the_latest_sevs_state() {
        assert_eq!(Opening::for_latest(None), Opening::Open);
        assert_eq!(
            Opening::for_latest(Some(SevState::Acknowledged)),
            Opening::Recur
        );
        assert_eq!(
            Opening::for_latest(Some(SevState::Resolved)),
            Opening::Reopen
        );
        assert_eq!(
            Opening::for_latest(Some(SevState::Declined)),
            Opening::OpenLinked
        );
    }

    #[test]
    fn enterprise_customers_raise_severity_one_level() {
        assert_eq!(impact(5, 3, 0), Severity::Sev3);
        assert_eq!(impact(200, 9, 0), Severity::Sev1);
    }
}
