//! Recall and precision of the redactor on a labelled corpus of support-ticket snippets.
//!
//! The corpus is generated from templates with a seeded PRNG, so it is the same on every run:
//! positives of every kind (cards with a computed Luhn digit, grouped by any common separator
//! and followed by an expiry or a code, IBANs with computed mod-97 check digits, phones in many
//! national and international formats, with extensions, emails, IPs, the customer's own name, id
//! and email) mixed with look-alikes that must stay (order, tracking and ticket numbers, dates,
//! times, amounts, versions, 16-digit numbers failing Luhn, short numbers, percentages,
//! postcodes). Run with `--nocapture` to see the table.

use std::collections::BTreeMap;
use std::ops::Range;

use sevloop_core::redact::{luhn_valid, Finding, Personal, PiiKind, Redactor};

const SNIPPETS: usize = 2_400;

/// splitmix64: tiny, seeded, and good enough to vary templates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn digit(&mut self) -> char {
        char::from(b'0' + self.below(10) as u8)
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| self.digit()).collect()
    }

    /// Replaces `#` by a digit, `~` by a digit 2-9, `^` by a capital letter, `?` by either,
    /// `*` by a hex digit; everything else stays.
    fn shape(&mut self, format: &str) -> String {
        format
            .chars()
            .map(|c| match c {
                '#' => self.digit(),
                '~' => char::from(b'2' + self.below(8) as u8),
                '^' => char::from(b'A' + self.below(26) as u8),
                '?' if self.below(2) == 0 => self.digit(),
                '?' => char::from(b'A' + self.below(26) as u8),
                '*' => char::from_digit(self.below(16) as u32, 16).expect("below 16"),
                c => c,
            })
            .collect()
    }
}

struct Customer {
    first: &'static str,
    last: &'static str,
    /// The full name as typed without accents ("Jose Garcia" for "José García").
    plain: String,
    id: String,
    email: String,
}

impl Customer {
    fn full(&self) -> String {
        format!("{} {}", self.first, self.last)
    }
}

#[derive(Default)]
struct Snippet {
    text: String,
    spans: Vec<(PiiKind, Range<usize>)>,
}

const FIRST_NAMES: &[(&str, &str)] = &[
    ("Jane", "jane"),
    ("Amelia", "amelia"),
    ("Oliver", "oliver"),
    ("Priya", "priya"),
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Łukasz", "lukasz"),
    ("Mohammed", "mohammed"),
    ("Chloé", "chloe"),
    ("Hiroshi", "hiroshi"),
    ("Ingrid", "ingrid"),
    ("Siobhan", "siobhan"),
    ("Dmitri", "dmitri"),
    ("Aaliyah", "aaliyah"),
    ("Mateo", "mateo"),
    ("Fatima", "fatima"),
    ("Björn", "bjorn"),
    ("Olusegun", "olusegun"),
    ("Anaïs", "anais"),
    ("Mary-Jane", "maryjane"),
];

const LAST_NAMES: &[(&str, &str)] = &[
    ("Doe", "doe"),
    ("Okafor", "okafor"),
    ("García", "garcia"),
    ("Müller", "muller"),
    ("Nowak", "nowak"),
    ("Nakamura", "nakamura"),
    ("O'Brien", "obrien"),
    ("Haddad", "haddad"),
    ("Lindqvist", "lindqvist"),
    ("Petrov", "petrov"),
    ("Fernandes", "fernandes"),
    ("Kowalczyk", "kowalczyk"),
    ("Dubois", "dubois"),
    ("Achterberg", "achterberg"),
];

fn customer(rng: &mut Rng) -> Customer {
    let (first, first_ascii) = FIRST_NAMES[rng.below(FIRST_NAMES.len())];
    let (last, last_ascii) = LAST_NAMES[rng.below(LAST_NAMES.len())];
    let id_format = rng.pick(&["CUST-0#####", "C-##########", "cus_??????????", "^C#######"]);
    let domain = rng.pick(&["example.com", "mail.example.co.uk", "corp.example.org"]);
    // The ASCII forms drop hyphens and apostrophes too; only accents are typed away here.
    let plain = |name: &'static str, ascii: &'static str| {
        if ascii.len() == name.chars().count() {
            ascii
        } else {
            name
        }
    };
    Customer {
        first,
        last,
        plain: format!("{} {}", plain(first, first_ascii), plain(last, last_ascii)),
        id: rng.shape(id_format),
        email: format!("{first_ascii}.{last_ascii}{}@{domain}", rng.digits(2)),
    }
}

fn card(rng: &mut Rng) -> String {
    let (prefix, len) = [
        ("4", 16),
        ("4", 13),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("34", 15),
        ("37", 15),
        ("6011", 16),
        ("35", 16),
        ("36", 14),
        ("6759", 19),
        ("62", 19),
    ][rng.below(12)];
    let body = format!("{prefix}{}", rng.digits(len - prefix.len() - 1));
    let number = (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|n| luhn_valid(n))
        .expect("one check digit fits");
    group_card(rng, &number)
}

fn group_card(rng: &mut Rng, number: &str) -> String {
    // The usual separators, twice over so they stay the most common, then the rarer ones: a dot,
    // an en dash, a narrow no-break space, two spaces, a spaced hyphen.
    let sep = rng.pick(&[
        "", " ", "-", " ", "", " ", "-", " ", ".", "\u{2013}", "\u{202f}", "  ", " - ",
    ]);
    let sizes: &[usize] = match number.len() {
        15 => &[4, 6, 5],
        14 => &[4, 6, 4],
        _ => &[4, 4, 4, 4, 4],
    };
    let mut groups = Vec::new();
    let mut rest = number;
    for &size in sizes {
        let (group, tail) = rest.split_at(size.min(rest.len()));
        groups.push(group);
        rest = tail;
    }
    groups.retain(|g| !g.is_empty());
    groups.join(sep)
}

fn failing_luhn(rng: &mut Rng) -> String {
    loop {
        let number = format!("4{}", rng.digits(15));
        if !luhn_valid(&number) {
            return group_card(rng, &number);
        }
    }
}

/// Country code and BBAN shape (see [`Rng::shape`]).
const IBAN_SHAPES: &[(&str, &str)] = &[
    ("GB", "^^^^##############"),
    ("DE", "##################"),
    ("FR", "##########???????????##"),
    ("ES", "####################"),
    ("IT", "^##########????????????"),
    ("NL", "^^^^##########"),
    ("BE", "############"),
    ("CH", "#####????????????"),
    ("PL", "########################"),
    ("IE", "^^^^##############"),
    ("NO", "###########"),
    ("PT", "#####################"),
    ("AT", "################"),
];

fn iban(rng: &mut Rng) -> String {
    let (country, shape) = IBAN_SHAPES[rng.below(IBAN_SHAPES.len())];
    let bban = rng.shape(shape);
    let check = 98 - mod97(&format!("{bban}{country}00"));
    let compact = format!("{country}{check:02}{bban}");
    if rng.below(2) == 0 {
        return compact;
    }
    let groups: Vec<String> = compact
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    groups.join(" ")
}

fn mod97(s: &str) -> u32 {
    s.chars().fold(0, |acc, c| {
        let v = c.to_digit(36).expect("alphanumeric");
        (acc * if v < 10 { 10 } else { 100 } + v) % 97
    })
}

const PHONE_FORMATS: &[&str] = &[
    "+44 20 #### ####",
    "+44 (0)20 #### ####",
    "+442079######",
    "+44 7700 ######",
    "+1-~##-~##-####",
    "+1 (~##) ~##-####",
    "+1 ~## ~## ####",
    "+33 # ## ## ## ##",
    "+33 6 ## ## ## ##",
    "+49 30 #######",
    "+49 (0)30 ########",
    "+91 ##### #####",
    "+61 2 #### ####",
    "+81 3-####-####",
    "+34 9## ### ###",
    "+39 06 #### ####",
    "+353 1 ### ####",
    "+31 20 ### ####",
    "+46 8 ### ### ##",
    "+55 11 9####-####",
    "+86 138 #### ####",
    "+7 495 ###-##-##",
    "0044 20 #### ####",
    "0049 30 #######",
    "020 #### ####",
    "0161 ### ####",
    "07700 ######",
    "(~##) ~##-####",
    "~##-~##-####",
    "~##.~##.####",
    "~## ~## ####",
    "~#########",
    "030 ########",
    "030-########",
    "0# ## ## ## ##",
    "0#.##.##.##.##",
    "06########",
    "9## ### ###",
    "06 #### ####",
    "0800 ### ####",
    "~##\u{2013}~##\u{2013}####",
    "~##\u{2011}~##\u{2011}####",
    "020\u{202f}####\u{202f}####",
    "+44(0)20########",
];

fn email(rng: &mut Rng) -> String {
    let (_, ascii_first) = FIRST_NAMES[rng.below(FIRST_NAMES.len())];
    let (_, ascii_last) = LAST_NAMES[rng.below(LAST_NAMES.len())];
    let local = match rng.below(7) {
        0 => format!("{ascii_first}.{ascii_last}"),
        1 => format!("{ascii_first}+tickets{}", rng.digits(2)),
        2 => format!("{}_{ascii_last}{}", &ascii_first[..1], rng.digits(3)),
        3 => format!("{ascii_first}-{ascii_last}").to_uppercase(),
        4 => format!("{ascii_first}.o'{ascii_last}"),
        5 => format!("{ascii_first}&{ascii_last}"),
        _ => format!("{ascii_last}{}", rng.digits(4)),
    };
    let domain = rng.pick(&[
        "gmail.com",
        "mail.example.co.uk",
        "EXAMPLE.COM",
        "support.bank-example.de",
        "outlook.fr",
        "sub.domain.example.io",
    ]);
    format!("{local}@{domain}")
}

fn ip(rng: &mut Rng) -> String {
    let octet = |rng: &mut Rng| rng.below(256).to_string();
    let hex = |rng: &mut Rng| format!("{:x}", rng.next() & 0xffff);
    match rng.below(5) {
        0 | 1 => (0..4).map(|_| octet(rng)).collect::<Vec<_>>().join("."),
        2 => (0..8).map(|_| hex(rng)).collect::<Vec<_>>().join(":"),
        3 => format!("2001:db8::{}:{}", hex(rng), hex(rng)),
        _ => format!("::ffff:{}.{}.0.{}", octet(rng), octet(rng), octet(rng)),
    }
}

/// A look-alike: text that resembles personal data and must come back unchanged.
fn look_alike(slot: &str, rng: &mut Rng) -> String {
    let formats: &[&str] = match slot {
        "order" => &[
            "Order ##########",
            "order #A-#####",
            "order no. ########",
            "Order number: ##########",
            "ORD-####-######",
            "PO #########",
            "Order ID: ##########",
            "Ref: ####-####-##",
            "SKU ###-###-###",
            "transaction ********-****-****-****-************",
        ],
        "tracking" => &[
            "1Z999AA1########",
            "1Z??????##########",
            "TRK-####-####",
            "tracking number ######################",
            "JD##################",
            "tracking ############",
            "tracking 9400 1### #### #### #### ##",
            "FedEx tracking #### #### ####",
            "parcel #### #### ####",
            "shipment number ## #### ####",
            "tracking no. #### #### ####",
        ],
        "ticket" => &[
            "ZD-#####",
            "ticket ######",
            "INC#######",
            "case ########",
            "SUP-####",
            "error 0x8007####",
            "sort code ##-##-##, account ########",
        ],
        "date" => &[
            "2024-0#-1#",
            "0#/1#/2024",
            "# Jan 2024",
            "1#.0#.2023",
            "2024-01-03T14:52:10Z",
            "Mar #, 2024",
        ],
        "time" => &["14:52:10", "#:05", "1#:4# UTC", "0#:##:##"],
        "amount" => &[
            "$1,234.56",
            "€ 20.00",
            "1.234,56 EUR",
            "£##.##",
            "USD #,###.##",
            "## ###,## €",
            "$#,###,###.00",
            "IDR #.###.###.###",
            "€ ### ### ###,##",
        ],
        "version" => &[
            "v#.#.#",
            "#.#.#.#-beta",
            "version 1#.#.#####",
            "build #####.####",
            "v1#.#.#.####",
            "Chrome 1##.0.####.###",
            "Windows 10.0.#####.####",
            "#.#.####.##",
        ],
        "short" => &[
            "####",
            "last four ####",
            "PIN ####",
            "code ######",
            "## items",
        ],
        "pct" => &["##.#%", "##%", "0.#%"],
        "expiry" => &["0~ 2#", "0~/2#", "11 2#"],
        "cvv" => &["###"],
        "ext" => &["#", "##", "###"],
        "postcode" => &[
            "SW1A 1AA",
            "75008",
            "10115",
            "90210-####",
            "EC1A 1BB",
            "~~###",
        ],
        other => panic!("unknown slot {other}"),
    };
    let format = rng.pick(formats);
    rng.shape(format)
}

/// The value of a template slot and, for personal data, its kind.
fn slot(name: &str, rng: &mut Rng, who: &Customer) -> (Option<PiiKind>, String) {
    match name {
        "card" => (Some(PiiKind::Card), card(rng)),
        "phone" => {
            let format = rng.pick(PHONE_FORMATS);
            (Some(PiiKind::Phone), rng.shape(format))
        }
        "email" => (Some(PiiKind::Email), email(rng)),
        "iban" => (Some(PiiKind::Iban), iban(rng)),
        "ip" => (Some(PiiKind::Ip), ip(rng)),
        "name" => (Some(PiiKind::Name), who.full()),
        "first" => (Some(PiiKind::Name), who.first.to_string()),
        "last" => (Some(PiiKind::Name), who.last.to_uppercase()),
        "lower" => (Some(PiiKind::Name), who.full().to_lowercase()),
        "plain" => (Some(PiiKind::Name), who.plain.clone()),
        "cid" => (Some(PiiKind::CustomerId), who.id.clone()),
        "cemail" => (Some(PiiKind::Email), who.email.clone()),
        "badcard" => (None, failing_luhn(rng)),
        other => (None, look_alike(other, rng)),
    }
}

fn fill(template: &str, rng: &mut Rng, who: &Customer) -> Snippet {
    let mut snippet = Snippet::default();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        snippet.text.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').expect("slots are closed");
        let (kind, value) = slot(&rest[open + 1..close], rng, who);
        let start = snippet.text.len();
        snippet.text.push_str(&value);
        if let Some(kind) = kind {
            snippet.spans.push((kind, start..snippet.text.len()));
        }
        rest = &rest[close + 1..];
    }
    snippet.text.push_str(rest);
    snippet
}

const POSITIVE_TEMPLATES: &[&str] = &[
    "Hi, my card {card} was charged twice, call me on {phone}",
    "Please refund {amount} to {iban}, thanks. {name}",
    "I can't log in from {ip}, my email is {email}",
    "This is {name} ({cid}), reach me at {phone} or {cemail}",
    "{first} here. The app crashed on {date} at {time}, phone {phone}.",
    "{order} has not arrived, my number is {phone}",
    "Customer {cid} says the transfer of {amount} to {iban} failed",
    "Login from {ip} was blocked at {time}. Contact: {email}",
    "Card {card} declined, {tracking} still pending",
    "Call {phone} please, re {ticket}",
    "Dear {first} {last}, {version} fixes the issue you saw from {ip}",
    "my phone is {phone}.",
    "{phone}",
    "email {cemail} or {email} about {order}",
    "Payment with {card} on {date} for {amount}; IBAN {iban}",
    "Mr {last} wrote from {email}: {pct} of my transfers fail",
    "Please call me back on {phone} or {phone} after {time}",
    "Charged {amount} on card {card}, exp 12/27",
    "Server {ip} returned 500 for {cid}",
    "Hello, it's {name}, mobile: {phone}, postcode {postcode}",
    "{email} - {order} - {phone}",
    "Device {ip} / {ip} both fail after {version}",
    "Refund to {iban} please ({ticket})",
    "Card number {card} ({short}) was refused",
    "From: {first} <{email}>, tel:{phone}",
    "mailto:{cemail} ({phone} ext. 12)",
    "card: {card}. thanks, {lower}",
    "{plain} here (no accents on this phone), call {phone}",
    "Dashboard at http://{ip}:8080/login is down for {first}'s team",
    "{last}, {first}: please call ({phone}) before {date}",
    "Order failed, card {card} {expiry}",
    "Refund ref: {card} {cvv}",
    "I paid USD with {card} {expiry}, {cvv}",
    "Reach me on {phone}x{ext} after {time}",
    "host:{ip} unreachable, write to '{email}'",
];

const NEGATIVE_TEMPLATES: &[&str] = &[
    "Qty\tPrice\tTotal\n12\t4999\t59988\n3\t1250\t3750",
    "{order} has not arrived",
    "{tracking} shows delivered on {date}",
    "Reopened {ticket} at {time}",
    "I was charged {amount} instead of {amount}",
    "Upgraded to {version} and it crashes",
    "Card {badcard} was declined",
    "Only {pct} of payments went through on {date}",
    "Ship to {postcode} please, {order}",
    "Invoice for {order} dated {date} shows {amount}",
    "Error {short} at {time} on {date}",
    "See {ticket} and {tracking}",
    "Reference {badcard}, {version}, {pct}",
];

fn corpus() -> Vec<(Snippet, Customer)> {
    let mut rng = Rng(0x5EB1_00F5);
    (0..SNIPPETS)
        .map(|i| {
            let who = customer(&mut rng);
            let templates = if i % 3 == 0 {
                NEGATIVE_TEMPLATES
            } else {
                POSITIVE_TEMPLATES
            };
            let template = templates[rng.below(templates.len())];
            (fill(template, &mut rng, &who), who)
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    positives: usize,
    found: usize,
    findings: usize,
    false_positives: usize,
}

impl Tally {
    fn recall(&self) -> f64 {
        ratio(self.found, self.positives)
    }

    fn precision(&self) -> f64 {
        ratio(self.findings - self.false_positives, self.findings)
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

fn covers(f: &Finding, span: &Range<usize>) -> bool {
    f.start <= span.start && span.end <= f.end
}

fn overlaps(f: &Finding, span: &Range<usize>) -> bool {
    f.start < span.end && span.start < f.end
}

fn score(snippet: &Snippet, findings: &[Finding], tally: &mut BTreeMap<PiiKind, Tally>) {
    for (kind, span) in &snippet.spans {
        let t = tally.entry(*kind).or_default();
        t.positives += 1;
        if findings.iter().any(|f| f.kind == *kind && covers(f, span)) {
            t.found += 1;
        }
    }
    for f in findings {
        let t = tally.entry(f.kind).or_default();
        t.findings += 1;
        if !snippet.spans.iter().any(|(_, span)| overlaps(f, span)) {
            t.false_positives += 1;
            println!(
                "false positive {:?} {:?} in {:?}",
                f.kind,
                &snippet.text[f.start..f.end],
                snippet.text
            );
        }
    }
}

fn print_table(tally: &BTreeMap<PiiKind, Tally>, total: &Tally) {
    println!(
        "{:<11} {:>9} {:>6} {:>7} {:>8} {:>9}",
        "kind", "positives", "found", "recall", "findings", "precision"
    );
    let rows = tally.iter().map(|(k, t)| (format!("{k:?}"), t));
    for (kind, t) in rows.chain([("all".to_string(), total)]) {
        println!(
            "{:<11} {:>9} {:>6} {:>7.4} {:>8} {:>9.4}",
            kind,
            t.positives,
            t.found,
            t.recall(),
            t.findings,
            t.precision()
        );
    }
}

#[test]
fn redaction_recall_and_precision_on_a_generated_corpus() {
    let redactor = Redactor::new();
    let corpus = corpus();
    let mut tally = BTreeMap::new();
    let mut negative_only = 0;
    for (snippet, who) in &corpus {
        let name = who.full();
        let personal = Personal {
            name: Some(&name),
            customer_id: Some(&who.id),
            email: Some(&who.email),
        };
        let findings = redactor.find(&snippet.text, &personal);
        for (kind, span) in &snippet.spans {
            if !findings.iter().any(|f| f.kind == *kind && covers(f, span)) {
                println!(
                    "missed {kind:?} {:?} in {:?}",
                    &snippet.text[span.clone()],
                    snippet.text
                );
            }
        }
        score(snippet, &findings, &mut tally);
        negative_only += usize::from(snippet.spans.is_empty());
    }
    let total = tally.values().fold(Tally::default(), |acc, t| Tally {
        positives: acc.positives + t.positives,
        found: acc.found + t.found,
        findings: acc.findings + t.findings,
        false_positives: acc.false_positives + t.false_positives,
    });
    println!(
        "{} snippets, {negative_only} without personal data",
        corpus.len()
    );
    print_table(&tally, &total);

    assert!(corpus.len() >= 2_000 && negative_only >= 600);
    for kind in PiiKind::ALL {
        let t = &tally[&kind];
        let floor = match kind {
            PiiKind::Card | PiiKind::Email | PiiKind::Phone => 0.995,
            _ => 0.99,
        };
        assert!(
            t.positives > 50,
            "{kind:?} has only {} positives",
            t.positives
        );
        assert!(
            t.recall() >= floor,
            "{kind:?} recall {:.4} < {floor}",
            t.recall()
        );
    }
    assert!(
        total.precision() >= 0.97,
        "precision {:.4}",
        total.precision()
    );
}
