use super::*;

const EXAMPLE: &str = r#"
default_team = "triage"
broadcast = ["ops"]

[teams.triage]
channels = ["triage-slack"]

[teams.cards]
channels = ["cards-pd", "ops"]
ack_timeout = "15m"
escalate_to = "triage"

[teams.fraud]

[channels.cards-pd]
kind = "pagerduty"
url = "https://events.pagerduty.com/v2/enqueue"
routing_key = "R0UTINGKEY0000000000000000000000"

[channels.triage-slack]
kind = "slack"
url = "https://hooks.slack.com/services/T/B/X"

[channels.ops]
kind = "webhook"
url = "http://127.0.0.1:9000/hooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]

[[routes]]
team = "fraud"
product = "cards"
keywords = ["stolen"]

[[routes]]
team = "cards"
product = "cards"
"#;

fn example() -> Catalog {
    Catalog::parse(EXAMPLE, "catalog.toml").expect("the example is valid")
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
    assert_eq!(example().route(&input("cards", &label)), "fraud");
    assert_eq!(example().route(&input("cards", &[])), "cards");
}

#[test]
fn unmatched_tickets_go_to_the_default_team() {
    assert_eq!(example().route(&input("transfers", &[])), "triage");
}

#[test]
fn teams_get_their_ack_timeout_escalation_target_and_channels_plus_broadcast() {
    let c = example();
    let cards = c.team("cards").unwrap();
    assert_eq!(cards.ack_timeout, Duration::from_secs(15 * 60));
    assert_eq!(cards.escalate_to.as_deref(), Some("triage"));
    assert_eq!(c.channels_of("cards"), vec!["cards-pd", "ops"]);
    assert_eq!(c.channels_of("triage"), vec!["triage-slack", "ops"]);
    assert_eq!(c.team("fraud").unwrap().ack_timeout, DEFAULT_ACK_TIMEOUT);
}

#[test]
fn secrets_never_show_in_debug_output() {
    let shown = format!("{:?}", example());
    assert!(
        !shown.contains("R0UTINGKEY") && !shown.contains("whsec_"),
        "{shown}"
    );
}

/// The 1-based line of `text` holding `needle`.
fn line_with(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

fn error_of(text: &str) -> CatalogError {
    Catalog::parse(text, "catalog.toml").expect_err("invalid catalog")
}

#[test]
fn a_route_to_an_unknown_team_is_refused_naming_its_line() {
    let text = EXAMPLE.replace("team = \"fraud\"", "team = \"frawd\"");
    let err = error_of(&text);
    let line = line_with(&text, "frawd").unwrap();
    assert_eq!(err.line, Some(line), "{err}");
    assert!(err.to_string().contains("frawd"), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("catalog.toml line {line}:")),
        "{err}"
    );
}

#[test]
fn an_unknown_channel_or_escalation_target_is_refused_naming_its_line() {
    let text = EXAMPLE.replace(
        "channels = [\"triage-slack\"]",
        "channels = [\"triage-slak\"]",
    );
    assert_eq!(error_of(&text).line, line_with(&text, "triage-slak"));
    let text = EXAMPLE.replace("escalate_to = \"triage\"", "escalate_to = \"nobody\"");
    assert_eq!(error_of(&text).line, line_with(&text, "nobody"));
}

#[test]
fn a_misspelt_key_or_a_bad_duration_is_refused_with_its_line() {
    let text = EXAMPLE.replace("ack_timeout = \"15m\"", "ack_timout = \"15m\"");
    let err = error_of(&text);
    assert_eq!(err.line, line_with(&text, "ack_timout"), "{err}");
    assert!(err.message.contains("ack_timout"), "{err}");
    let text = EXAMPLE.replace("\"15m\"", "\"soon\"");
    assert_eq!(error_of(&text).line, line_with(&text, "soon"));
}

#[test]
fn a_pagerduty_channel_without_routing_key_is_refused_at_its_table() {
    let text = EXAMPLE.replace("routing_key = \"R0UTINGKEY0000000000000000000000\"\n", "");
    let err = error_of(&text);
    assert_eq!(err.line, line_with(&text, "[channels.cards-pd]"), "{err}");
    assert!(err.message.contains("routing_key"), "{err}");
}

#[test]
fn the_default_catalog_sends_everything_to_triage_and_tells_nobody() {
    let c = Catalog::default();
    assert_eq!(c.route(&input("cards", &[])), "triage");
    assert!(c.channels_of("triage").is_empty());
}

#[test]
fn the_summary_shows_ownership_and_escalation_but_no_url_or_secret() {
    let summary = example().summary();
    let text = serde_json::to_string(&summary).expect("serializes");
    let c = example();
    for channel in c.channels.values() {
        assert!(!text.contains(&channel.url), "no channel URL: {text}");
        for secret in channel.secrets.iter().chain(&channel.routing_key) {
            assert!(!text.contains(secret.expose()), "no secret: {text}");
        }
    }
    assert_eq!(summary.default_team, c.default_team);
    assert_eq!(summary.teams.len(), c.teams.len());
    assert_eq!(summary.routes, c.routes);
    assert!(summary.teams.iter().all(|t| t.ack_timeout_seconds > 0));
}

#[test]
fn the_summary_knows_its_endpoints() {
    let mut c = example();
    let channel = c
        .channels
        .keys()
        .next()
        .expect("the example has channels")
        .clone();
    assert!(c.summary().has_endpoint(&channel));
    assert!(!c.summary().has_endpoint("no-such-channel"));
    c.helpdesk = None;
    assert!(
        !c.summary().has_endpoint(HELPDESK),
        "no helpdesk, no write-back"
    );
    c.helpdesk = Some(Helpdesk {
        url: "http://127.0.0.1:1/".into(),
        authorization: None,
        id_prefix: String::new(),
    });
    assert!(c.summary().has_endpoint(HELPDESK));
}

#[test]
fn a_channel_named_with_a_control_character_is_refused() {
    let text = EXAMPLE
        .replace("[channels.cards-pd]", "[channels.\"cards\\u0000pd\"]")
        .replace("\"cards-pd\"", "\"cards\\u0000pd\"");
    let err = error_of(&text);
    assert!(err.message.contains("control characters"), "{err}");
    assert!(
        err.message.contains("cards\\0pd"),
        "the name is shown escaped: {err}"
    );
}

#[test]
fn a_pagerduty_routing_key_of_another_length_is_refused_at_its_table() {
    let text = EXAMPLE.replace("R0UTINGKEY0000000000000000000000", "SHORTKEY");
    let err = error_of(&text);
    assert_eq!(err.line, line_with(&text, "[channels.cards-pd]"), "{err}");
    assert!(err.message.contains("32-character"), "{err}");
    assert!(
        !err.message.contains("SHORTKEY"),
        "the key is a secret: {err}"
    );
}

#[test]
fn a_webhook_without_secrets_is_refused_at_its_table() {
    let text = EXAMPLE.replace(
        "secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
        "",
    );
    let err = error_of(&text);
    assert_eq!(err.line, line_with(&text, "[channels.ops]"), "{err}");
    assert!(err.message.contains("needs `secrets`"), "{err}");
    let text = EXAMPLE.replace("[\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]", "[]");
    assert!(error_of(&text).message.contains("needs `secrets`"));
}

#[test]
fn an_ack_timeout_under_a_second_is_refused_at_its_team() {
    for short in ["0s", "500ms"] {
        let text = EXAMPLE.replace("ack_timeout = \"15m\"", &format!("ack_timeout = {short:?}"));
        let err = error_of(&text);
        assert_eq!(err.line, line_with(&text, "[teams.cards]"), "{err}");
        assert!(err.message.contains("team `cards`: `ack_timeout`"), "{err}");
    }
    let text = EXAMPLE.replace("ack_timeout = \"15m\"", "ack_timeout = \"1s\"");
    assert!(
        Catalog::parse(&text, "catalog.toml").is_ok(),
        "a short one is kept"
    );
}
