//! What a receiver is told of the changes it missed while its endpoint was disabled (it answered
//! 410 Gone), once it is called again. Replaying every missed change would page on-call for
//! SEVs long resolved: a trigger followed at once by its resolve. So a SEV that closed meanwhile
//! is cut down to its close, or to nothing for a receiver that never heard of it.

use crate::NoticeKind;

/// What becomes of one SEV's missed changes to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUp {
    /// For each change, oldest first: whether it is sent.
    pub send: Vec<bool>,
    /// Why the others are not: the record they keep.
    pub why_not: &'static str,
}

/// Which of a SEV's missed changes to one endpoint are sent, given as the kinds of its
/// undelivered notifications, oldest first. `heard` says whether the receiver was told of the
/// SEV before (a notification of the stream was delivered); `raises_alerts` whether the endpoint
/// pages people or opens alerts (every catalog channel), as the helpdesk's ticket notes do not.
///
/// - The SEV is live (its newest change does not close it): every change is sent, in order,
///   since the receiver should hear the SEV it would have been paged about.
/// - It is closed and the receiver knew of it: only the closing change is sent, so its alert
///   resolves without being raised again on the way.
/// - It is closed and the receiver never knew of it: nothing is sent to an alerting endpoint;
///   a helpdesk ticket still gets the closing note, which tells support where the ticket stands.
///
/// A kind that is not a SEV change (a linked ticket) never closes.
pub fn catch_up(kinds: &[&str], heard: bool, raises_alerts: bool) -> CatchUp {
    let closed = kinds
        .last()
        .and_then(|k| NoticeKind::parse(k))
        .is_some_and(NoticeKind::closes);
    let told_of_close = heard || !raises_alerts;
    let newest = kinds.len().saturating_sub(1);
    CatchUp {
        send: (0..kinds.len())
            .map(|i| !closed || (i == newest && told_of_close))
            .collect(),
        why_not: if told_of_close {
            "superseded: the SEV closed while the endpoint was disabled; only its last change is sent"
        } else {
            "superseded: the SEV closed while the endpoint was disabled, before the receiver heard of it"
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_live_sev_is_told_in_full() {
        let kinds = ["opened", "updated", "acknowledged"];
        assert_eq!(catch_up(&kinds, false, true).send, [true, true, true]);
        assert_eq!(catch_up(&kinds, true, true).send, [true, true, true]);
    }

    #[test]
    fn a_closed_sev_the_receiver_knew_gets_only_its_close() {
        let kinds = ["acknowledged", "updated", "resolved"];
        assert_eq!(catch_up(&kinds, true, true).send, [false, false, true]);
    }

    #[test]
    fn a_closed_sev_the_receiver_never_knew_is_not_raised() {
        for close in ["resolved", "declined", "merged", "rerouted_away"] {
            let kinds = ["opened", "acknowledged", close];
            let told = catch_up(&kinds, false, true);
            assert_eq!(told.send, [false, false, false], "{close}");
            assert!(
                told.why_not.contains("before the receiver heard"),
                "{close}"
            );
        }
    }

    #[test]
    fn a_helpdesk_ticket_gets_the_closing_note_even_if_it_missed_the_rest() {
        let kinds = ["ticket_linked", "resolved"];
        assert_eq!(catch_up(&kinds, false, false).send, [false, true]);
    }

    #[test]
    fn a_reopened_sev_is_live_again() {
        let kinds = ["resolved", "reopened"];
        assert_eq!(catch_up(&kinds, true, true).send, [true, true]);
        assert_eq!(
            catch_up(&["resolved", "ticket_linked"], true, true).send,
            [true, true]
        );
        assert!(catch_up(&[], true, true).send.is_empty());
    }

    fn kind() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            proptest::sample::select(NoticeKind::ALL.map(NoticeKind::as_str).to_vec()),
            Just("ticket_linked"),
        ]
    }

    proptest! {
        #[test]
        fn at_most_the_newest_change_of_a_closed_sev_is_sent(
            kinds in proptest::collection::vec(kind(), 0..8),
            heard: bool,
            raises_alerts: bool,
        ) {
            let sent = catch_up(&kinds, heard, raises_alerts).send;
            prop_assert_eq!(sent.len(), kinds.len());
            let closed = kinds.last().and_then(|k| NoticeKind::parse(k)).is_some_and(NoticeKind::closes);
            if closed {
                let told: Vec<usize> = (0..sent.len()).filter(|&i| sent[i]).collect();
                prop_assert!(told.is_empty() || told == [kinds.len() - 1]);
                prop_assert_eq!(told.is_empty(), !heard && raises_alerts);
            } else {
                prop_assert!(sent.iter().all(|&s| s));
            }
        }
    }
}
