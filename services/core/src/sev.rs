//! SEV vocabulary: states and severity from impact.

use serde::{Deserialize, Serialize};

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
    /// several enterprise customers are among them.
    ///
    /// | distinct customers | severity |
    /// |---|---|
    /// | 100 or more | SEV1 |
    /// | 30 to 99 | SEV2 |
    /// | 10 to 29 | SEV3 |
    /// | fewer | SEV4 |
    ///
    /// Three or more enterprise customers raise it one level (never above SEV1).
    pub fn from_impact(distinct_customers: u64, enterprise_customers: u64) -> Self {
        let base = match distinct_customers {
            100.. => Severity::Sev1,
            30..=99 => Severity::Sev2,
            10..=29 => Severity::Sev3,
            _ => Severity::Sev4,
        };
        if enterprise_customers >= 3 {
            base.raised()
        } else {
            base
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_grows_with_distinct_customers() {
        assert_eq!(Severity::from_impact(5, 0), Severity::Sev4);
        assert_eq!(Severity::from_impact(10, 0), Severity::Sev3);
        assert_eq!(Severity::from_impact(30, 0), Severity::Sev2);
        assert_eq!(Severity::from_impact(100, 0), Severity::Sev1);
    }

    #[test]
    fn enterprise_customers_raise_severity_one_level() {
        assert_eq!(Severity::from_impact(5, 3), Severity::Sev3);
        assert_eq!(Severity::from_impact(200, 9), Severity::Sev1);
    }
}
