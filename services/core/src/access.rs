//! Who may do what. Every person reaches sevloop with a token of one role; the role, never the
//! person, is what the SEV timeline records.
//!
//! | role | may |
//! |---|---|
//! | support | file tickets; read tickets (with their text), clusters, SEVs and their state; search |
//! | team member (of one team) | read tickets and clusters (text redacted), SEVs; act on its own team's SEVs; correct clusters |
//! | leadership | read SEVs and aggregates; never ticket text or customer identifiers |
//! | admin | everything, and tokens and the catalog |

use serde::{Deserialize, Serialize};

/// A token's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    Support,
    Team { team: String },
    Leadership,
    Admin,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    FileTickets,
    /// Tickets, clusters and search, with the ticket text (support, admin) or redacted (teams).
    ReadTickets,
    ReadSevs,
    /// An action on a SEV of this team.
    ActOnSev {
        team: &'a str,
    },
    /// Merging and splitting clusters, moving tickets.
    CorrectClusters,
    /// Aggregates: response times, Pareto of clusters, trends.
    ReadAggregates,
    /// Tokens and the catalog.
    Administer,
}

/// How much of a ticket's text a role may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextView {
    /// As written (support staff work with it).
    Full,
    /// With personal data removed.
    Redacted,
    /// Not at all.
    None,
}

impl Role {
    pub fn allows(&self, need: Need) -> bool {
        use Need::*;
        match self {
            Role::Admin => true,
            Role::Support => matches!(need, FileTickets | ReadTickets | ReadSevs),
            Role::Team { team } => match need {
                ReadTickets | ReadSevs | CorrectClusters => true,
                ActOnSev { team: owner } => owner == team,
                FileTickets | ReadAggregates | Administer => false,
            },
            Role::Leadership => matches!(need, ReadSevs | ReadAggregates),
        }
    }

    pub fn text_view(&self) -> TextView {
        match self {
            Role::Admin | Role::Support => TextView::Full,
            Role::Team { .. } => TextView::Redacted,
            Role::Leadership => TextView::None,
        }
    }

    /// How the timeline names an actor of this role: `support`, `team:cards`, `leadership`,
    /// `admin`.
    pub fn actor(&self) -> String {
        match self {
            Role::Team { team } => format!("team:{team}"),
            other => other.name().to_string(),
        }
    }

    /// The team of an actor [`Role::actor`] names, if it is a team member.
    pub fn team_of_actor(actor: &str) -> Option<&str> {
        actor.strip_prefix("team:")
    }

    pub fn name(&self) -> &'static str {
        match self {
            Role::Support => "support",
            Role::Team { .. } => "team",
            Role::Leadership => "leadership",
            Role::Admin => "admin",
        }
    }

    /// The team of a team member.
    pub fn team(&self) -> Option<&str> {
        match self {
            Role::Team { team } => Some(team),
            _ => None,
        }
    }

    /// The role a stored name (and team, for team members) stands for.
    pub fn parse(name: &str, team: Option<&str>) -> Option<Role> {
        match (name, team) {
            ("support", None) => Some(Role::Support),
            ("team", Some(t)) if !t.trim().is_empty() && t.trim() == t => Some(Role::Team {
                team: t.to_string(),
            }),
            ("leadership", None) => Some(Role::Leadership),
            ("admin", None) => Some(Role::Admin),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(t: &str) -> Role {
        Role::Team { team: t.into() }
    }

    #[test]
    fn a_team_role_needs_a_team_name_and_no_other_role_takes_one() {
        assert_eq!(Role::parse("team", Some("cards")), Some(team("cards")));
        for blank in ["", "  ", " cards"] {
            assert_eq!(Role::parse("team", Some(blank)), None, "{blank:?}");
        }
        assert_eq!(Role::parse("team", None), None);
        assert_eq!(Role::parse("admin", Some("cards")), None);
        assert_eq!(Role::parse("owner", None), None);
    }

    #[test]
    fn a_team_member_acts_only_on_its_own_teams_sevs() {
        assert!(team("cards").allows(Need::ActOnSev { team: "cards" }));
        assert!(!team("cards").allows(Need::ActOnSev { team: "payments" }));
        assert!(Role::Admin.allows(Need::ActOnSev { team: "payments" }));
        assert!(!Role::Support.allows(Need::ActOnSev { team: "cards" }));
        assert!(!Role::Leadership.allows(Need::ActOnSev { team: "cards" }));
    }

    #[test]
    fn leadership_reads_sevs_and_aggregates_but_never_tickets() {
        let l = Role::Leadership;
        assert!(l.allows(Need::ReadSevs) && l.allows(Need::ReadAggregates));
        assert!(!l.allows(Need::ReadTickets) && !l.allows(Need::FileTickets));
        assert_eq!(l.text_view(), TextView::None);
    }

    #[test]
    fn only_admins_administer_and_only_support_and_admins_file_tickets() {
        for role in [Role::Support, team("cards"), Role::Leadership] {
            assert!(!role.allows(Need::Administer), "{role:?}");
        }
        assert!(Role::Support.allows(Need::FileTickets));
        assert!(!team("cards").allows(Need::FileTickets));
    }

    #[test]
    fn roles_round_trip_through_their_stored_names_and_name_the_actor() {
        for role in [Role::Support, team("cards"), Role::Leadership, Role::Admin] {
            let t = match &role {
                Role::Team { team } => Some(team.as_str()),
                _ => None,
            };
            assert_eq!(Role::parse(role.name(), t), Some(role.clone()));
        }
        assert_eq!(team("cards").actor(), "team:cards");
        assert_eq!(Role::parse("team", None), None);
        assert_eq!(Role::parse("support", Some("cards")), None);
    }
}
