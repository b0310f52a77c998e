//! Ownership: which team a cluster's SEV goes to. First matching route wins; otherwise the
//! default (triage) team.

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Catalog {
    pub default_team: String,
    pub routes: Vec<Route>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            default_team: "triage".to_string(),
            routes: Vec::new(),
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
    pub fn route(&self, input: &RouteInput) -> &str {
        self.routes
            .iter()
            .find(|r| r.matches(input))
            .map_or(self.default_team.as_str(), |r| r.team.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            default_team: "triage".into(),
            routes: vec![
                Route {
                    team: "fraud".into(),
                    product: Some("cards".into()),
                    component: None,
                    tags: vec![],
                    keywords: vec!["stolen".into()],
                },
                Route {
                    team: "cards".into(),
                    product: Some("cards".into()),
                    component: None,
                    tags: vec![],
                    keywords: vec![],
                },
            ],
        }
    }

    fn input<'a>(product: &'a str, label: &'a [String]) -> RouteInput<'a> {
        RouteInput {
            product,
            component: None,
            tags: &[],
            label,
        }
    }

    #[test]
    fn the_first_matching_route_wins() {
        let label = vec!["stolen".to_string(), "card".to_string()];
        assert_eq!(catalog().route(&input("cards", &label)), "fraud");
        assert_eq!(catalog().route(&input("cards", &[])), "cards");
    }

    #[test]
    fn unmatched_tickets_go_to_the_default_team() {
        assert_eq!(catalog().route(&input("transfers", &[])), "triage");
    }
}
