//! Helpers for end-to-end tests: they spawn the real `sevloop` binary against the real broker and
//! database and read results only through public interfaces (API, topics, tables).
//! A missing Kafka or PostgreSQL is a loud failure, never a skip: run `scripts/services.sh`.
#![allow(dead_code)] // each test binary uses a different subset

pub mod capture;
pub mod complaints;
pub mod sevs;
pub mod topics;
pub mod words;

use std::collections::BTreeSet;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_sevloop");

/// Settings that switch the sentence encoder off: these tests are about the loop, not about
/// which cluster a ticket joins, and terms alone keep them fast (tests of clustering turn it on).
pub const TERMS_ONLY: &str = "[encoder]\nenabled = false\n";

pub fn kafka_brokers() -> String {
    std::env::var("SEVLOOP_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn postgres_server() -> String {
    std::env::var("SEVLOOP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn fresh_topic(name: &str, partitions: i32) {
    let brokers = kafka_brokers();
    sevloop_bus::kafka::create_topic(&brokers, name, partitions)
        .await
        .unwrap_or_else(|e| {
            panic!("Kafka is not usable at {brokers} ({e}); start it with scripts/services.sh")
        });
}

/// A fresh tickets topic named after `prefix`, with `partitions`, and its dead-letter topic.
pub async fn fresh_topics(prefix: &str, partitions: i32) -> String {
    let topic = unique(prefix);
    fresh_topic(&topic, partitions).await;
    fresh_topic(&format!("{topic}.dlq"), 1).await;
    topic
}

/// A fresh topic for the SEV events of the instance reading `topic`.
pub async fn fresh_sev_events_topic(topic: &str) -> String {
    let events = format!("{topic}.sev-events");
    fresh_topic(&events, 1).await;
    events
}

pub async fn fresh_database() -> String {
    let server = postgres_server();
    sevloop_store::create_postgres_database(&server, &unique("sevloop_test"))
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not usable at {server} ({e}); start it with scripts/services.sh")
        })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Polls `f` until it yields a value or `timeout` passes (then panics naming `what`).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a token with `sevloop token create` on the database `database` names (`--config F`
/// or `--data-dir D`); returns its secret.
pub fn create_token(database: &[String], role: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["token", "create", "--label", "test"])
        .args(role)
        .args(database)
        .stderr(Stdio::inherit())
        .output()
        .expect("sevloop token create runs");
    assert!(out.status.success(), "token create failed: {}", out.status);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A client that sends `token` with every request.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {token}").parse().expect("header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// A running `sevloop` process, killed when dropped. Its requests carry an admin token.
pub struct Sevloop {
    child: Child,
    pub url: String,
    /// The secret of an admin token, made before the process started.
    pub token: String,
    /// How `sevloop token create` finds its database: `--config F` or `--data-dir D`.
    database: Vec<String>,
    http: reqwest::Client,
}

impl Sevloop {
    pub fn spawn(args: &[&str], port: u16, database: Vec<String>) -> Self {
        let log = std::env::var("SEVLOOP_TEST_LOG")
            .unwrap_or_else(|_| "info,sqlx=warn,tantivy=warn".into());
        Sevloop::spawn_logging(args, port, database, &log, Stdio::inherit())
    }

    /// Makes an admin token, then runs the binary with `RUST_LOG=log`, its logs (stderr) going
    /// to `stderr`.
    fn spawn_logging(
        args: &[&str],
        port: u16,
        database: Vec<String>,
        log: &str,
        stderr: Stdio,
    ) -> Self {
        let token = create_token(&database, &["--role", "admin"]);
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", log)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("sevloop binary starts");
        Sevloop {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: client_with(&token),
            token,
            database,
        }
    }

    /// Runs `sevloop ARGS` against this instance's database; returns its output.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .args(&self.database)
            .output()
            .expect("sevloop runs")
    }

    /// A token of another role (`&["--role", "team", "--team", "cards"]`) on this instance.
    pub fn token_for(&self, role: &[&str]) -> String {
        create_token(&self.database, role)
    }

    /// `sevloop up` (the embedded mode) on `data` with the settings file `config`.
    pub fn up(data: &Path, config: &Path, port: u16) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let data = data.to_str().unwrap_or_default();
        Sevloop::spawn(
            &[
                "up",
                "--data-dir",
                data,
                "--listen",
                &listen,
                "--config",
                config.to_str().unwrap_or_default(),
            ],
            port,
            vec!["--data-dir".into(), data.into()],
        )
    }

    /// `sevloop up` with the catalog `catalog` in a fresh directory (returned: it holds the
    /// data), once it answers `/healthz`.
    pub async fn embedded(catalog: &str) -> (Self, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let catalog_file = dir.path().join("catalog.toml");
        std::fs::write(&catalog_file, catalog).expect("catalog written");
        let config = dir.path().join("sevloop.toml");
        let settings = format!(
            "catalog = {:?}\n{TERMS_ONLY}",
            catalog_file.display().to_string()
        );
        std::fs::write(&config, settings).expect("config written");
        let sevloop = Sevloop::up(&dir.path().join("data"), &config, free_port());
        sevloop.wait_healthy().await;
        (sevloop, dir)
    }

    /// `sevloop serve --config FILE` with the given config text.
    pub fn serve(config: &Config) -> Self {
        let path = config.write();
        let path = path.to_str().unwrap_or_default();
        Sevloop::spawn(
            &["serve", "--config", path],
            config.port,
            vec!["--config".into(), path.into()],
        )
    }

    /// `sevloop replay FILE --api URL` with this instance's token.
    pub fn replay_api(&self, file: &Path) {
        replay(file, &["--api", &self.url, "--token", &self.token]);
    }

    /// `sevloop serve` as [`Sevloop::serve`], once it answers `/healthz`.
    pub async fn serve_healthy(config: &Config) -> Self {
        let sevloop = Sevloop::serve(config);
        sevloop.wait_healthy().await;
        sevloop
    }

    /// `sevloop serve --config FILE` with debug logs written to the file `log`.
    pub fn serve_logged(config: &Config, log: &Path) -> Self {
        let path = config.write();
        let path = path.to_str().unwrap_or_default();
        Sevloop::spawn_logging(
            &["serve", "--config", path],
            config.port,
            vec!["--config".into(), path.into()],
            "debug",
            File::create(log).expect("log file").into(),
        )
    }

    pub async fn wait_healthy(&self) {
        let url = format!("{}/healthz", self.url);
        eventually(
            "sevloop to answer /healthz",
            Duration::from_secs(60),
            || async {
                reqwest::get(&url)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            },
        )
        .await;
    }

    /// kill -9: no chance to flush or commit anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for an orderly exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    /// GET; the body as JSON (null when it is not).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get_text(path).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET that must answer 200; returns the body as JSON (null when it is not).
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("API answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// POST with a JSON body, or none.
    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resp = request.send().await.expect("API answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Sevloop {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Settings of one sevloop instance under test, written as TOML.
pub struct Config {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kafka: Option<(String, String)>,
    pub database_url: String,
    pub topic: String,
    pub dlq_topic: String,
    pub webhook: Option<String>,
    /// The whole catalog file, instead of the one `webhook` makes.
    pub catalog: Option<String>,
    /// More settings, appended as written (start it with a `[table]` header).
    pub extra: String,
}

impl Config {
    pub fn kafka(topic: &str, group: &str, database_url: &str) -> Self {
        Config {
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            kafka: Some((kafka_brokers(), group.to_string())),
            database_url: database_url.to_string(),
            topic: topic.to_string(),
            dlq_topic: format!("{topic}.dlq"),
            webhook: None,
            catalog: None,
            extra: String::new(),
        }
    }

    /// Settings for an instance reading `topic` with its own consumer group and a fresh database.
    pub async fn for_topic(topic: &str) -> Self {
        Config::kafka(topic, &unique("group"), &fresh_database().await)
    }

    pub fn toml(&self) -> String {
        let catalog = self.dir.path().join("catalog.toml");
        let mut t = format!(
            "catalog = {catalog:?}\ndata_dir = {data:?}\n[http]\nlisten = \"127.0.0.1:{port}\"\n[database]\nurl = {db:?}\n\
             [pipeline]\ntickets_topic = {topic:?}\ndlq_topic = {dlq:?}\nindex_commit_interval = \"200ms\"\n",
            catalog = catalog.display().to_string(),
            data = self.dir.path().display().to_string(),
            port = self.port,
            db = self.database_url,
            topic = self.topic,
            dlq = self.dlq_topic,
        );
        if let Some((brokers, group)) = &self.kafka {
            t.push_str(&format!(
                "[kafka]\nbrokers = {brokers:?}\ngroup_id = {group:?}\nauto_offset_reset = \"earliest\"\ninstance_id = \"{group}-1\"\n"
            ));
        }
        if !self.extra.contains("[encoder]") {
            t.push_str(TERMS_ONLY);
        }
        t.push_str(&self.extra);
        t
    }

    pub fn write(&self) -> PathBuf {
        let catalog = self.dir.path().join("catalog.toml");
        let text = self
            .catalog
            .clone()
            .unwrap_or_else(|| catalog_toml(self.webhook.as_deref()));
        std::fs::write(&catalog, text).expect("catalog written");
        let path = self.dir.path().join("sevloop.toml");
        std::fs::write(&path, self.toml()).expect("config written");
        path
    }

    pub fn index_dir(&self) -> PathBuf {
        self.dir.path().join("index")
    }
}

/// Two teams: `triage`, which owns everything, and `cards`, which owns nothing.
pub const TWO_TEAMS: &str = "default_team = \"triage\"\n[teams.triage]\n[teams.cards]\n";

/// A catalog's `[channels.<name>]` table for a generic webhook at `url` (signed: a catalog
/// refuses an unsigned webhook).
pub fn webhook_channel(name: &str, url: &str) -> String {
    let secret = capture::WEBHOOK_SECRET;
    format!("[channels.{name}]\nkind = \"webhook\"\nurl = {url:?}\nsecrets = [{secret:?}]\n")
}

/// A catalog that sends everything to `triage` and, given a URL, tells a generic webhook
/// named `test` about every SEV.
pub fn catalog_toml(webhook: Option<&str>) -> String {
    let mut t = String::from("default_team = \"triage\"\n");
    if let Some(url) = webhook {
        t.push_str("broadcast = [\"test\"]\n");
        t.push_str(&webhook_channel("test", url));
    }
    t.push_str("[teams.triage]\n");
    t
}

/// A webhook receiver on loopback that records every request.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().expect("lock").push((headers, body.0));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, received }
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// Background tickets: the bundled BANKING77 slice without its injected incidents, cycled with
/// fresh ids, one every `spacing_s` seconds of event time (the slice's own rate is one per 15 s).
pub fn background(n: usize, spacing_s: i64) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/demo");
    let truth =
        std::fs::read_to_string(root.join("banking77-demo.truth.jsonl")).expect("truth file");
    let injected: BTreeSet<String> = truth
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["injected"] == json!(true))
        .filter_map(|v| v["ticket_id"].as_str().map(str::to_string))
        .collect();
    let text = std::fs::read_to_string(root.join("banking77-demo.tickets.jsonl")).expect("tickets");
    let rows: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| !injected.contains(v["ticket_id"].as_str().unwrap_or_default()))
        .collect();
    (0..n)
        .map(|i| {
            let mut t = rows[i % rows.len()].clone();
            t["ticket_id"] = json!(format!("bg-{i}"));
            t["event_time"] = json!(at(i as i64 * spacing_s));
            t
        })
        .collect()
}

/// `seconds` after 2024-01-01T00:00:00Z, RFC 3339.
pub fn at(seconds: i64) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").expect("valid time");
    (start + chrono::Duration::seconds(seconds)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One complaint from `n` distinct customers, starting `start_s` seconds in, over ten minutes.
pub fn burst(n: usize, start_s: i64) -> Vec<Value> {
    let texts = [
        "My card payment is declined at checkout with error {n}",
        "Card payment declined at checkout again, error {n}",
        "checkout keeps declining my card payment (error {n})",
    ];
    (0..n)
        .map(|i| {
            json!({"ticket_id": format!("burst-{i}"), "event": "created",
                "event_time": at(start_s + (600 * i as i64) / n as i64),
                "subject": "Card declined at checkout",
                "body": texts[i % texts.len()].replace("{n}", &(4000 + i).to_string()),
                "product": "cards", "customer": {"id": format!("burst-cust-{i}"), "tier": "pro"},
                "channel": "web", "source": "test"})
        })
        .collect()
}

/// Merges tickets into event-time order (stable).
pub fn by_event_time(mut tickets: Vec<Value>) -> Vec<Value> {
    tickets.sort_by(|a, b| a["event_time"].as_str().cmp(&b["event_time"].as_str()));
    tickets
}

pub fn write_jsonl(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("jsonl written");
    path
}

pub fn to_lines(tickets: &[Value]) -> Vec<String> {
    tickets.iter().map(Value::to_string).collect()
}

/// Runs `sevloop replay` to completion.
pub fn replay(file: &Path, target: &[&str]) {
    let status = Command::new(BIN)
        .arg("replay")
        .arg(file)
        .args(target)
        .stdout(Stdio::null())
        .status()
        .expect("replay runs");
    assert!(status.success(), "replay failed: {status}");
}

/// Writes `lines` to `dir/name` and replays them into `topic` with `sevloop replay --kafka`.
pub fn replay_into(topic: &str, dir: &Path, name: &str, lines: &[String]) {
    let file = write_jsonl(dir, name, lines);
    replay(&file, &["--kafka", &kafka_brokers(), "--topic", topic]);
}

pub async fn connect(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("database at {url} is not reachable: {e}"))
}

pub async fn scalar(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Waits until the database holds at least `n` tickets.
pub async fn wait_for_tickets(database_url: &str, n: i64, timeout: Duration) {
    let pool = connect(database_url).await;
    eventually(&format!("{n} tickets to be stored"), timeout, || async {
        (scalar(&pool, "SELECT COUNT(*) FROM tickets").await >= n).then_some(())
    })
    .await;
    pool.close().await;
}

/// `v[field]` as a string, empty when it is not one.
pub fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_default()
}
