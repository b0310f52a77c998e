//! What each role sees of a ticket's text: support staff and admins the text as written (they
//! work with it), team members the text with personal data removed and no customer id,
//! leadership nothing (their endpoints never carry ticket text).

use sevloop_core::access::TextView;
use sevloop_core::redact::{Personal, Redactor};
use sevloop_index::Hit;
use sevloop_store::{ClusterDetail, Filer, TicketRow};

/// Stands in for a customer id a role may not see.
const HIDDEN: &str = "[customer]";

pub(crate) fn ticket(mut t: TicketRow, view: TextView, r: &Redactor) -> TicketRow {
    if view != TextView::Full {
        let personal = personal(&t.filed_by);
        t.subject = shown(&t.subject, view, r, &personal);
        t.body = shown(&t.body, view, r, &personal);
        t.customer_id = HIDDEN.to_string();
    }
    t
}

pub(crate) fn cluster(mut c: ClusterDetail, view: TextView, r: &Redactor) -> ClusterDetail {
    for e in &mut c.exemplars {
        let personal = personal(&e.filed_by);
        e.subject = shown(&e.subject, view, r, &personal);
        e.body = shown(&e.body, view, r, &personal);
    }
    c
}

/// The filer's own name, id and email: hidden along with the patterns.
pub(crate) fn personal(filer: &Filer) -> Personal<'_> {
    Personal {
        name: filer.name.as_deref(),
        customer_id: Some(&filer.id),
        email: filer.email.as_deref(),
    }
}

pub(crate) fn hit(mut h: Hit, view: TextView, r: &Redactor, filer: &Filer) -> Hit {
    h.subject = shown(&h.subject, view, r, &personal(filer));
    h
}

fn shown(text: &str, view: TextView, r: &Redactor, personal: &Personal) -> String {
    match view {
        TextView::Full => text.to_string(),
        TextView::Redacted => r.redact(text, personal),
        TextView::None => String::new(),
    }
}
