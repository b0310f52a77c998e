use super::delimited::iban_valid;
use super::*;
use proptest::prelude::*;
use std::sync::OnceLock;

fn redactor() -> &'static Redactor {
    static REDACTOR: OnceLock<Redactor> = OnceLock::new();
    REDACTOR.get_or_init(Redactor::new)
}

fn kinds(text: &str, personal: &Personal) -> Vec<(PiiKind, String)> {
    let found = redactor().find(text, personal);
    found
        .iter()
        .map(|f| (f.kind, text[f.start..f.end].to_string()))
        .collect()
}

/// A Luhn-valid number: `body` followed by its check digit.
fn with_check_digit(body: &str) -> String {
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|n| luhn_valid(n))
        .expect("one check digit fits")
}

#[test]
fn each_kind_is_found_and_replaced_by_its_placeholder() {
    let cases = [
        (
            "mail Jane.Doe+tix@Mail.Example.CO.UK now",
            "mail [email] now",
        ),
        ("card 4539 1488 0343 6467 twice", "card [card] twice"),
        ("card 4539-1488-0343-6467.", "card [card]."),
        ("amex 378282246310005 ok", "amex [card] ok"),
        (
            "iban GB82 WEST 1234 5698 7654 32, thanks",
            "iban [iban], thanks",
        ),
        ("iban de89370400440532013000", "iban [iban]"),
        (
            "from 192.168.0.17:8443 and 2001:db8::8a2e:370:7334",
            "from [ip]:8443 and [ip]",
        ),
        (
            "full 2001:0db8:85a3:0000:0000:8a2e:0370:7334 and ::ffff:192.0.2.1",
            "full [ip] and [ip]",
        ),
        (
            "call +44 20 7946 0958 or (202) 555-0143",
            "call [phone] or [phone]",
        ),
        (
            "on 0044 20 7946 0958, +1-202-555-0143, +91 98765 43210",
            "on [phone], [phone], [phone]",
        ),
        (
            "ring 020 7946 0958 / 202.555.0143 / 01 23 45 67 89",
            "ring [phone] / [phone] / [phone]",
        ),
        (
            "mobile 07700 900123, +44 (0)20 7946 0958",
            "mobile [phone], [phone]",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(redactor().redact_all(text), expected, "{text}");
    }
}

#[test]
fn the_customers_own_strings_are_hidden_wherever_they_appear() {
    let personal = Personal {
        name: Some("Mary-Jane O'Neil"),
        customer_id: Some("CUST-00042"),
        email: Some("mj@corp.example"),
    };
    let text =
        "mary-jane o'neil (cust-00042): JANE here, O’Neil too; Janet is not; MJ@corp.example";
    assert_eq!(
        redactor().redact(text, &personal),
        "[name] ([customer]): [name] here, [name] too; Janet is not; [email]"
    );
}

#[test]
fn a_name_is_found_with_or_without_its_accents_however_they_are_written() {
    let redact = |name: &str, text: &str| {
        let personal = Personal {
            name: Some(name),
            ..Personal::default()
        };
        redactor().redact(text, &personal)
    };
    assert_eq!(
        redact("José García", "Jose Garcia here, jose garcia, JOSÉ"),
        "[name] here, [name], [name]"
    );
    assert_eq!(redact("Zoë Müller", "Zoe Muller wrote"), "[name] wrote");
    assert_eq!(redact("Łukasz Straße", "Lukasz, STRASSE"), "[name], [name]");
    // The text's accent as a combining mark after the letter, the field's precomposed.
    assert_eq!(redact("José", "Jose\u{301} called"), "[name] called");
    assert_eq!(redact("Jose\u{301}", "José called"), "[name] called");
    assert_eq!(redact("José", "Josef called"), "Josef called");
}

#[test]
fn names_tells_whether_a_text_names_the_customer_and_nothing_else() {
    let personal = Personal {
        name: Some("Zoë Müller"),
        customer_id: Some("CUST-00042"),
        email: Some("zm@corp.example"),
    };
    for text in [
        "spoke to zoe muller",
        "re cust-00042",
        "from ZM@corp.example",
    ] {
        assert!(redactor().names(text, &personal), "{text}");
    }
    for text in [
        "card 4539 1488 0343 6467",
        "jane@example.com",
        "Ms MÜLLER",
        "Zoe",
    ] {
        assert!(
            !redactor().names(text, &personal),
            "{text}: a part of a name is a word too"
        );
    }
}

#[test]
fn a_short_name_part_alone_keeps_its_accents_so_common_words_stay() {
    let personal = Personal {
        name: Some("Tô Đỗ Lê"),
        ..Personal::default()
    };
    assert_eq!(
        redactor().redact(
            "moved to payments, do not close; Lê wrote, TÔ too. To Do Le",
            &personal
        ),
        "moved to payments, do not close; [name] wrote, [name] too. [name]"
    );
}

#[test]
fn name_parts_shorter_than_two_letters_are_left_alone() {
    let personal = Personal {
        name: Some("J. R. Hartley"),
        ..Personal::default()
    };
    assert_eq!(
        redactor().redact("J wrote to hartley", &personal),
        "J wrote to [name]"
    );
}

#[test]
fn luhn_accepts_valid_numbers_and_rejects_altered_or_short_ones() {
    assert!(luhn_valid("4539 1488 0343 6467"));
    assert!(luhn_valid("378282246310005"));
    assert!(!luhn_valid("4539 1488 0343 6468"));
    assert!(!luhn_valid("1234567890123456"));
    assert!(luhn_valid(&with_check_digit("12345678901")));
    assert!(luhn_valid("000000000000"));
    assert!(!luhn_valid("00000000000"), "11 digits are too few");
    assert!(!luhn_valid("0"));
}

#[test]
fn iban_check_digits_must_satisfy_mod_97() {
    assert!(iban_valid("GB82WEST12345698765432"));
    assert!(iban_valid("DE89370400440532013000"));
    assert!(iban_valid("fr1420041010050500013m02606"));
    assert!(!iban_valid("GB83WEST12345698765432"));
    assert!(!iban_valid("DE89370400440532013001"));
    assert_eq!(
        kinds("GB83 WEST 1234 5698 7654 32", &Personal::default()),
        vec![]
    );
}

#[test]
fn a_sixteen_digit_number_failing_luhn_is_neither_card_nor_phone() {
    let text = "ref 4539 1488 0343 6468 and 4539148803436468";
    assert_eq!(redactor().redact_all(text), text);
}

#[test]
fn overlapping_candidates_keep_the_longer_finding() {
    let personal = Personal {
        name: Some("Jane Doe"),
        ..Personal::default()
    };
    assert_eq!(
        kinds("write jane.doe@example.com", &personal),
        vec![(PiiKind::Email, "jane.doe@example.com".into())]
    );
    assert_eq!(
        kinds("to GB82 WEST 1234 5698 7654 32", &Personal::default()),
        vec![(PiiKind::Iban, "GB82 WEST 1234 5698 7654 32".into())]
    );
    assert_eq!(
        kinds("::ffff:192.0.2.1", &Personal::default()),
        vec![(PiiKind::Ip, "::ffff:192.0.2.1".into())]
    );
}

#[test]
fn a_card_and_a_phone_in_one_run_of_digits_are_told_apart() {
    assert_eq!(
        redactor().redact_all("+44 20 7946 0958 4539 1488 0343 6467"),
        "[phone] [card]"
    );
    assert_eq!(
        redactor().redact_all("4539 1488 0343 6467 exp 12 26"),
        "[card] exp 12 26"
    );
}

#[test]
fn text_without_personal_data_comes_back_unchanged() {
    let texts = [
        "Order 4839201734 has not arrived",
        "order #A-99812, tracking 1Z999AA10123456784 and TRK-4829-2291",
        "ticket ZD-48213 reopened on 2024-01-03 at 14:52:10 (03/01/2024)",
        "charged $1,234.56 and € 20.00 and 1.234,56 EUR, 12.5% more",
        "after v2.3.1 and 1.2.3.4-beta, build 22631.2861, version 10.12.14.1234",
        "postcodes SW1A 1AA, 75008, 90210-1234; PIN 1234; code 482913",
        "2024-01-03 14:52 and 03.01.2024 09:05",
        "std::vector and Foo::Bar are C++, :: too",
    ];
    for text in texts {
        assert_eq!(redactor().redact_all(text), text);
    }
}

#[test]
fn context_words_decide_between_a_reference_and_a_phone() {
    let cases = [
        ("invoice 4839201734", "invoice 4839201734"),
        ("order number is 4839201734", "order number is 4839201734"),
        ("SKU 123-456-789", "SKU 123-456-789"),
        ("order late, call 4839201734", "order late, call [phone]"),
        ("4839201734", "[phone]"),
        ("Re ticket: 020 7946 0958", "Re ticket: [phone]"),
        (
            "Order 4839201734 - 020 7946 0958",
            "Order 4839201734 - [phone]",
        ),
        ("paid € 123 456 789,00", "paid € 123 456 789,00"),
        ("call 030/1234567", "call [phone]"),
    ];
    for (text, expected) in cases {
        assert_eq!(redactor().redact_all(text), expected, "{text}");
    }
}

#[test]
fn placeholders_are_never_redacted_again() {
    let personal = Personal {
        name: Some("Email Card"),
        customer_id: Some("phone"),
        email: None,
    };
    let text = "[email] [card] [phone]";
    assert_eq!(redactor().redact(text, &personal), text);
    assert_eq!(redactor().redact("email me", &personal), "[name] me");
}

#[test]
fn digits_glued_to_an_email_are_redacted_on_a_second_pass() {
    assert_eq!(
        redactor().redact_all("x@example.com4539148803436467"),
        "[email][card]"
    );
}

#[test]
fn utf8_text_keeps_findings_on_char_boundaries() {
    let text = "Zoë 🎉 josé@exämple.com ☎+44 20 7946 0958 — Müller, 4539 1488 0343 6467 ✓";
    let personal = Personal {
        name: Some("Zoë Müller"),
        ..Personal::default()
    };
    let found = redactor().find(text, &personal);
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(found
        .iter()
        .all(|f| text.is_char_boundary(f.start) && text.is_char_boundary(f.end)));
    assert_eq!(
        redactor().redact(text, &personal),
        "[name] 🎉 [email] ☎[phone] — [name], [card] ✓"
    );
}

#[test]
fn a_card_followed_by_its_expiry_or_code_is_found_after_a_reference_word() {
    let cases = [
        (
            "Order failed, card 4539 1488 0343 6467 05 27",
            "Order failed, card [card] 05 27",
        ),
        (
            "Order failed, card 4539 1488 0343 6467 05/27",
            "Order failed, card [card] 05/27",
        ),
        (
            "Refund ref: 4539 1488 0343 6467 124",
            "Refund ref: [card] 124",
        ),
        (
            "I paid USD with 4539 1488 0343 6467 05 27",
            "I paid USD with [card] 05 27",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(redactor().redact_all(text), expected, "{text}");
    }
}

#[test]
fn a_luhn_valid_stretch_of_a_longer_reference_is_not_a_card() {
    let prefix = with_check_digit("940011112222333");
    let texts = [
        format!("tracking {} 4444 55", group_by_four(&prefix)),
        "order 1234 4539 1488 0343 6467".to_string(),
    ];
    for text in texts {
        assert_eq!(redactor().redact_all(&text), text);
    }
}

fn group_by_four(digits: &str) -> String {
    let groups: Vec<&str> = digits
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    groups.join(" ")
}

#[test]
fn an_ipv6_address_right_after_a_label_and_colon_is_found() {
    let cases = [
        ("ip:2001:db8::1", "ip:[ip]"),
        ("host:2001:db8::1 down", "host:[ip] down"),
        ("addr:2a02:c7f:5e4c:f100:1c1e:c6d0:f0ee:1d4b", "addr:[ip]"),
        ("peer=::1, x2001:db8::1", "peer=[ip], x2001:db8::1"),
        ("host:::ffff:192.0.2.1 down", "host:[ip] down"),
    ];
    for (text, expected) in cases {
        assert_eq!(redactor().redact_all(text), expected, "{text}");
    }
}

#[test]
fn groups_may_be_parted_by_dots_unicode_dashes_and_spaces() {
    let cases = [
        ("card 4539.1488.0343.6467.", "card [card]."),
        (
            "card 4539\u{2013}1488\u{2013}0343\u{2013}6467",
            "card [card]",
        ),
        (
            "card 4539\u{2011}1488\u{2011}0343\u{2011}6467",
            "card [card]",
        ),
        (
            "card 4539\u{202f}1488\u{202f}0343\u{202f}6467",
            "card [card]",
        ),
        (
            "card 4539\u{2007}1488\u{2007}0343\u{2007}6467",
            "card [card]",
        ),
        // Tabs part a table's columns, not a number's groups.
        ("12\t4999\t59988", "12\t4999\t59988"),
        ("card 4539  1488  0343  6467 ok", "card [card] ok"),
        (
            "card 4539 - 1488 - 0343 - 6467 - thanks",
            "card [card] - thanks",
        ),
        ("call 555\u{2013}123\u{2013}4567", "call [phone]"),
        ("call 555\u{2011}123\u{2011}4567", "call [phone]"),
        ("call 555\u{2212}123\u{2212}4567", "call [phone]"),
        ("call 020\u{202f}7946\u{202f}0958.", "call [phone]."),
    ];
    for (text, expected) in cases {
        assert_eq!(redactor().redact_all(text), expected, "{text}");
    }
}

#[test]
fn a_value_set_apart_after_a_reference_is_judged_on_its_own() {
    let cases = [
        (
            "Order 4839201734 - 4539 1488 0343 6467",
            "Order 4839201734 - [card]",
        ),
        ("Order 12345. 4539 1488 0343 6467", "Order 12345. [card]"),
    ];
    for (text, expected) in cases {
        assert_eq!(redactor().redact_all(text), expected, "{text}");
    }
}

#[test]
fn a_card_parted_by_a_wide_separator_is_parted_by_it_throughout() {
    // "991309 - 030 50024850" passes Luhn, but it spans two numbers.
    let text = "see ORD-3703-991309 - 030 50024850";
    assert_eq!(redactor().redact_all(text), "see ORD-3703-991309 - [phone]");
    assert_eq!(
        redactor().redact_all("card 4539-1488 0343 6467"),
        "card [card]"
    );
}

#[test]
fn an_extension_glued_to_a_phone_number_does_not_hide_it() {
    let cases = [
        ("phone: 020 7946 0958x123", "phone: [phone]x123"),
        ("call 555-123-4567x89", "call [phone]x89"),
        ("call +44(0)2079460958", "call [phone]"),
        (
            "screen 1920x1080, error 0x8007000E",
            "screen 1920x1080, error 0x8007000E",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(redactor().redact_all(text), expected, "{text}");
    }
}

#[test]
fn emails_with_apostrophes_or_ampersands_are_found_whole() {
    let cases = [
        ("from jane.o'brien@example.com", "from [email]"),
        ("first&last@example.com wrote", "[email] wrote"),
        (
            "she said 'jane@example.com' twice",
            "she said '[email]' twice",
        ),
        (
            "\"jane@example.com\", <jo@example.com>",
            "\"[email]\", <[email]>",
        ),
        ("email=jane@example.com&to=x", "email=[email]&to=x"),
        ("/users/jane@example.com/", "/users/[email]/"),
    ];
    for (text, expected) in cases {
        assert_eq!(redactor().redact_all(text), expected, "{text}");
    }
}

#[test]
fn versions_and_spaced_tracking_numbers_are_not_phones() {
    let texts = [
        "Chrome 120.0.6099.109 crashes",
        "Windows 10.0.22631.2861",
        "FedEx tracking 1234 5678 9012",
        "parcel 1234 5678 9012 and shipment number 1234 5678 9012",
    ];
    for text in texts {
        assert_eq!(redactor().redact_all(text), text);
    }
    let cases = [
        (
            "parcel not delivered, 020 7946 0958",
            "parcel not delivered, [phone]",
        ),
        (
            "tracking broken, call 020 7946 0958",
            "tracking broken, call [phone]",
        ),
        ("ring 01.23.45.67.89", "ring [phone]"),
    ];
    for (text, expected) in cases {
        assert_eq!(redactor().redact_all(text), expected, "{text}");
    }
}

fn filler() -> impl Strategy<Value = String> {
    // Digits are left out (a number one space away is read as part of the run), and so are
    // currency signs, which rightly make the number next to them an amount.
    let left_out = |c: char| c.is_ascii_digit() || "$€£¥₹".contains(c);
    "\\PC{0,40}".prop_map(move |s| s.replace(left_out, ""))
}

fn email() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9._+-]{0,12}@[A-Za-z][A-Za-z0-9-]{0,8}(\\.[A-Za-z]{2,8}){0,2}\\.[A-Za-z]{2,6}"
}

fn card() -> impl Strategy<Value = String> {
    let body = (1u8..10, prop::collection::vec(0u8..10, 11..=17));
    (body, prop_oneof![Just(""), Just(" "), Just("-")]).prop_map(|((first, rest), sep)| {
        let body: String = std::iter::once(first)
            .chain(rest)
            .map(|d| char::from(b'0' + d))
            .collect();
        let number = with_check_digit(&body);
        let groups: Vec<&str> = number
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        groups.join(sep)
    })
}

fn phone() -> impl Strategy<Value = String> {
    let formats = [
        "+44 20 #### ####",
        "+1-###-###-####",
        "+33 # ## ## ## ##",
        "+49 30 #######",
        "0044 20 #### ####",
        "+91 ##### #####",
        "+1 (###) ###-####",
        "+81 3-####-####",
        "0## #### ####",
        "(###) ###-####",
        "###-###-####",
        "###.###.####",
        "030 ########",
        "0# ## ## ## ##",
        "07### ######",
        "##########",
    ];
    (
        prop::sample::select(formats.to_vec()),
        prop::collection::vec(0u8..10, 12),
    )
        .prop_map(|(format, digits)| {
            let mut digits = digits.into_iter();
            format
                .chars()
                .map(|c| match c {
                    '#' => char::from(b'0' + digits.next().unwrap_or(5)),
                    c => c,
                })
                .collect()
        })
}

proptest! {
    #[test]
    fn redaction_never_panics_and_findings_sit_on_char_boundaries(
        text in any::<String>(),
        name in any::<String>(),
        id in any::<String>(),
    ) {
        let personal = Personal { name: Some(&name), customer_id: Some(&id), email: Some(&id) };
        for f in redactor().find(&text, &personal) {
            prop_assert!(f.start < f.end);
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        redactor().redact(&text, &personal);
    }

    #[test]
    fn planted_emails_cards_and_phones_never_survive_redaction(
        before in filler(),
        planted in prop_oneof![email(), card(), phone()],
        after in filler(),
    ) {
        let text = format!("{before} {planted} {after}");
        let redacted = redactor().redact_all(&text);
        prop_assert!(!redacted.contains(&planted), "{redacted}");
    }

    #[test]
    fn redacting_twice_equals_redacting_once(
        text in prop_oneof!["\\PC{0,200}", "[0-9a-fA-F @.:+()#%/-]{0,120}"],
    ) {
        let personal = Personal { name: Some("Ada Lovelace"), customer_id: Some("42"), email: None };
        let once = redactor().redact(&text, &personal);
        prop_assert_eq!(redactor().redact(&once, &personal), once);
    }

    #[test]
    fn lowercase_words_and_spaces_come_back_unchanged(text in "[a-z ]{0,200}") {
        prop_assert_eq!(redactor().redact_all(&text), text);
    }
}
