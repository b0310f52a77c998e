//! Made-up complaints for the detection and closed-loop tests: a quiet background every product
//! gets, and bursts of one new complaint. Every complaint has its own words (with the encoder
//! off, clustering is on terms alone), and none of the bursts shares a word with the background.

use serde_json::{json, Value};

use super::at;

pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;

/// One kind of complaint: its subject and three ways customers phrase it. `{n}` stands for an
/// order or reference number (masked by the featurizer, so it never tells tickets apart).
pub struct Complaint {
    pub subject: &'static str,
    pub bodies: [&'static str; 3],
}

impl Complaint {
    /// One created ticket of this complaint (phrasing and reference number vary with `i`).
    pub fn ticket(
        &self,
        id: &str,
        product: &str,
        at_s: i64,
        customer: &str,
        tier: &str,
        i: usize,
    ) -> Value {
        let body = self.bodies[i % self.bodies.len()]
            .replace("{n}", &(10_000 + 37 * i + at_s as usize % 997).to_string());
        json!({"ticket_id": id, "event": "created", "event_time": at(at_s),
            "subject": self.subject, "body": body, "product": product,
            "customer": {"id": customer, "tier": tier}, "channel": "web", "source": "test"})
    }
}

/// The background: sixteen unrelated complaints.
pub const BACKGROUND: [Complaint; 16] = [
    Complaint {
        subject: "Password reset link expired",
        bodies: [
            "The password reset link expired before I could use it, request {n}",
            "My password reset link is already expired (request {n})",
            "Password reset link expired within seconds, request {n}",
        ],
    },
    Complaint {
        subject: "Dark mode toggle missing",
        bodies: [
            "The dark mode toggle is missing from the settings menu since {n}",
            "Cannot find the dark mode toggle in settings anymore, version {n}",
            "Dark mode toggle gone from the settings menu on version {n}",
        ],
    },
    Complaint {
        subject: "Invoice PDF download blank",
        bodies: [
            "Downloading the invoice PDF gives a blank page, invoice {n}",
            "Invoice PDF is blank when downloaded (invoice {n})",
            "Blank invoice PDF page on download, invoice {n}",
        ],
    },
    Complaint {
        subject: "Authenticator code rejected",
        bodies: [
            "My authenticator code is rejected at sign in, device {n}",
            "Sign in rejects the authenticator code, device {n}",
            "Authenticator code rejected repeatedly, device {n}",
        ],
    },
    Complaint {
        subject: "Push notifications delayed",
        bodies: [
            "Push notifications arrive hours delayed on my phone ({n})",
            "Delayed push notifications on phone {n}",
            "Push notifications come hours late, phone {n}",
        ],
    },
    Complaint {
        subject: "CSV export truncates columns",
        bodies: [
            "CSV export truncates the last columns of report {n}",
            "Exported CSV has truncated columns, report {n}",
            "Columns truncated when exporting CSV, report {n}",
        ],
    },
    Complaint {
        subject: "Profile photo upload fails",
        bodies: [
            "Uploading a profile photo fails with a spinner, file {n}",
            "Profile photo upload fails, file {n}",
            "Profile photo upload fails silently, file {n}",
        ],
    },
    Complaint {
        subject: "Calendar sync duplicates meetings",
        bodies: [
            "Calendar sync duplicates my meetings, calendar {n}",
            "Duplicated meetings from calendar sync, calendar {n}",
            "Calendar sync creates duplicate meetings ({n})",
        ],
    },
    Complaint {
        subject: "Search ignores filters",
        bodies: [
            "Search results ignore the date filters I set ({n})",
            "Filters are ignored by search results, query {n}",
            "Search ignores filters completely, query {n}",
        ],
    },
    Complaint {
        subject: "German translation garbled",
        bodies: [
            "The German translation is garbled in the sidebar ({n})",
            "Garbled German translation in sidebar labels, language {n}",
            "Sidebar German translation looks garbled, language {n}",
        ],
    },
    Complaint {
        subject: "Subscription renewal charged twice",
        bodies: [
            "My subscription renewal was charged twice, receipt {n}",
            "Charged twice for the subscription renewal ({n})",
            "Subscription renewal double charged, receipt {n}",
        ],
    },
    Complaint {
        subject: "Map pin wrong location",
        bodies: [
            "The map pin shows the wrong location for store {n}",
            "Wrong location on the map pin, store {n}",
            "Map pin placed at the wrong location, store {n}",
        ],
    },
    Complaint {
        subject: "Video playback stutters",
        bodies: [
            "Video playback stutters and buffers, stream {n}",
            "Stuttering video playback on stream {n}",
            "Playback of video stutters constantly, stream {n}",
        ],
    },
    Complaint {
        subject: "Keyboard shortcuts stopped working",
        bodies: [
            "Keyboard shortcuts stopped working in the editor ({n})",
            "Editor keyboard shortcuts do nothing, layout {n}",
            "Keyboard shortcuts stopped responding in the editor, layout {n}",
        ],
    },
    Complaint {
        subject: "Printer driver crashes",
        bodies: [
            "The printer driver crashes when sending a job ({n})",
            "Printer driver crash on each job, spooler {n}",
            "Driver for the printer crashes, spooler {n}",
        ],
    },
    Complaint {
        subject: "Timezone displays UTC",
        bodies: [
            "Timezone displays UTC instead of my local zone ({n})",
            "Timestamps in UTC instead of the local timezone, region {n}",
            "Local timezone replaced by UTC, region {n}",
        ],
    },
];

/// Complaints for bursts; none shares a word with the background.
pub const REFUND: Complaint = Complaint {
    subject: "Refund for cancelled flight pending",
    bodies: [
        "Refund for my cancelled flight is pending, booking {n}",
        "Cancelled flight refund pending for weeks, booking {n}",
        "Where is the refund for the cancelled flight? booking {n}",
    ],
};
pub const LOYALTY: Complaint = Complaint {
    subject: "Loyalty points vanished from balance",
    bodies: [
        "Loyalty points vanished from my balance, member {n}",
        "My loyalty balance lost its points, member {n}",
        "Loyalty points balance dropped to zero, member {n}",
    ],
};
pub const CHECKOUT: Complaint = Complaint {
    subject: "Checkout button greyed out on mobile",
    bodies: [
        "The checkout button is greyed out on mobile, cart {n}",
        "Mobile checkout button stays greyed, cart {n}",
        "Greyed checkout button on mobile web, cart {n}",
    ],
};
pub const SCANNER: Complaint = Complaint {
    subject: "Barcode scanner offline in warehouse",
    bodies: [
        "Barcode scanner offline at warehouse dock {n}",
        "Warehouse barcode scanner went offline, dock {n}",
        "Barcode scanner in the warehouse offline, dock {n}",
    ],
};

/// The background of `product` between `from` and `to` (seconds of event time): each of
/// `complaints` once every 40 minutes (at most one ticket per 30-minute window, far below any
/// floor), staggered so all of them are born within the first 40 minutes. Ticket `i` of
/// complaint `k` is `<product>-bg-<k>-<i>`, filed by a customer of its own.
pub fn background_of(product: &str, complaints: &[Complaint], from: i64, to: i64) -> Vec<Value> {
    let stagger = 40 * MINUTE / complaints.len() as i64;
    let mut out = Vec::new();
    for (k, complaint) in complaints.iter().enumerate() {
        for i in 0.. {
            let t = k as i64 * stagger + i as i64 * 40 * MINUTE;
            if t >= to {
                break;
            }
            if t >= from {
                let tier = ["free", "pro", "pro"][(k + i) % 3];
                out.push(complaint.ticket(
                    &format!("{product}-bg-{k}-{i}"),
                    product,
                    t,
                    &format!("{product}-bgc-{k}-{i}"),
                    tier,
                    i,
                ));
            }
        }
    }
    out
}

/// `n` tickets of `complaint` evenly spread over ten minutes from `start`; ticket `i` is filed
/// by `customer(i)` with tier `tier`. Ids are `<prefix>-<i>`.
pub fn burst_of(
    product: &str,
    prefix: &str,
    complaint: &Complaint,
    n: usize,
    start: i64,
    tier: &str,
    customer: impl Fn(usize) -> String,
) -> Vec<Value> {
    (0..n)
        .map(|i| {
            complaint.ticket(
                &format!("{prefix}-{i}"),
                product,
                start + (10 * MINUTE * i as i64) / n as i64,
                &customer(i),
                tier,
                i,
            )
        })
        .collect()
}

pub fn ids(tickets: &[Value]) -> Vec<String> {
    tickets
        .iter()
        .filter_map(|t| t["ticket_id"].as_str().map(str::to_string))
        .collect()
}
