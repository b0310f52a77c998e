//! SEV vocabulary: severity from impact, states, and what people do to a SEV.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// Why an action does not apply to a SEV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
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
