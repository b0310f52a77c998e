use super::*;
use std::fs::OpenOptions;
use std::time::Duration;

use super::codec::encode;
use crate::Record;

const T: &str = "sevloop.tickets.v1";

fn rec(key: Option<&str>, payload: &str) -> Outgoing {
    Outgoing {
        key: key.map(|k| k.as_bytes().to_vec()),
        payload: payload.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}

async fn read_all(log: &EmbeddedLog, topic: &str) -> Vec<Record> {
    let mut reader = log.reader(topic, 0);
    let mut out = Vec::new();
    loop {
        let batch = reader.next_batch(2, Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

fn payloads(records: &[Record]) -> Vec<&[u8]> {
    records.iter().map(|r| r.payload.as_slice()).collect()
}

#[tokio::test]
async fn appended_records_read_back_in_order_with_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path()).unwrap();
    let first = vec![rec(Some("k1"), "a"), rec(None, "b"), rec(Some(""), "")];
    assert_eq!(log.append(T, first).await.unwrap(), vec![0, 1, 2]);
    let second = vec![rec(None, "d"), rec(Some("k5"), "e")];
    assert_eq!(log.append(T, second).await.unwrap(), vec![3, 4]);
    assert_eq!(log.append(T, Vec::new()).await.unwrap(), Vec::<i64>::new());
    assert_eq!(log.end_offset(T), 5);

    let mut reader = log.reader(T, 0);
    let records = reader.next_batch(10, Duration::ZERO).await.unwrap();
    assert_eq!(reader.position(), 5);
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert_eq!(payloads(&records), vec![&b"a"[..], b"b", b"", b"d", b"e"]);
    assert_eq!(records[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(records[1].key, None);
    assert_eq!(records[2].key.as_deref(), Some(&b""[..]));
    assert!(records.iter().all(|r| r.topic == T && r.partition == 0));

    let mut middle = log.reader(T, 3);
    let one = middle.next_batch(1, Duration::ZERO).await.unwrap();
    assert_eq!((one.len(), one[0].offset, middle.position()), (1, 3, 4));
}

#[tokio::test]
async fn headers_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let headers = vec![
        ("sevloop.error.code".to_owned(), b"invalid".to_vec()),
        ("empty".to_owned(), Vec::new()),
    ];
    {
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let dead = Outgoing {
            headers: headers.clone(),
            ..rec(Some("k"), "p")
        };
        log.append("sevloop.tickets.dlq", vec![dead, rec(None, "plain")])
            .await
            .unwrap();
    }
    let log = EmbeddedLog::open(dir.path()).unwrap();
    let records = read_all(&log, "sevloop.tickets.dlq").await;
    assert_eq!(records[0].headers, headers);
    assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
    assert!(records[1].headers.is_empty());
}

#[tokio::test]
async fn a_reader_position_is_clamped_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path()).unwrap();
    log.append(T, vec![rec(None, "a"), rec(None, "b")])
        .await
        .unwrap();
    assert_eq!(log.reader(T, -7).position(), 0);
    assert_eq!(log.reader(T, 99).position(), 2);
    assert_eq!(log.reader("nobody.wrote.here", 5).position(), 0);
    assert_eq!(log.end_offset("nobody.wrote.here"), 0);
}

#[tokio::test]
async fn reopening_keeps_every_durable_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let batch = vec![rec(Some("k"), "one"), rec(None, "two")];
        log.append(T, batch).await.unwrap();
        log.append(T, vec![rec(None, "three")]).await.unwrap();
    }
    let log = EmbeddedLog::open(dir.path()).unwrap();
    assert_eq!(log.end_offset(T), 3);
    let records = read_all(&log, T).await;
    assert_eq!(payloads(&records), vec![&b"one"[..], b"two", b"three"]);
    assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(
        log.append(T, vec![rec(None, "four")]).await.unwrap(),
        vec![3]
    );
}

#[tokio::test]
async fn a_torn_tail_is_truncated_and_later_appends_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{T}.log"));
    {
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let batch = vec![rec(None, "a"), rec(Some("k"), "b")];
        log.append(T, batch).await.unwrap();
    }
    let good_len = std::fs::metadata(&path).unwrap().len();
    let mut half = Vec::new();
    encode(
        &mut half,
        &rec(Some("key"), "a payload cut short by kill -9"),
    );
    half.truncate(half.len() / 2);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&half).unwrap();
    drop(file);

    let log = EmbeddedLog::open(dir.path()).unwrap();
    assert_eq!(log.end_offset(T), 2);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
    assert_eq!(log.append(T, vec![rec(None, "c")]).await.unwrap(), vec![2]);
    drop(log);

    let log = EmbeddedLog::open(dir.path()).unwrap();
    let records = read_all(&log, T).await;
    assert_eq!(payloads(&records), vec![&b"a"[..], b"b", b"c"]);
    assert_eq!(records[2].offset, 2);
}

#[tokio::test]
async fn a_last_record_with_a_bad_checksum_or_trailing_garbage_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{T}.log"));
    {
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let batch = vec![rec(None, "keep"), rec(None, "flip")];
        log.append(T, batch).await.unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    bytes.extend_from_slice(&[0u8; 40]);
    std::fs::write(&path, &bytes).unwrap();

    let log = EmbeddedLog::open(dir.path()).unwrap();
    assert_eq!(log.end_offset(T), 1);
    assert_eq!(payloads(&read_all(&log, T).await), vec![&b"keep"[..]]);
}

#[tokio::test]
async fn a_reader_waits_for_records_appended_later() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path()).unwrap();
    let mut reader = log.reader(T, 0);
    let waiting = tokio::spawn(async move {
        let batch = reader
            .next_batch(10, Duration::from_secs(10))
            .await
            .unwrap();
        (batch, reader.position())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.append(T, vec![rec(None, "late")]).await.unwrap();
    let (batch, position) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payloads(&batch), vec![&b"late"[..]]);
    assert_eq!(position, 1);
}

#[tokio::test]
async fn a_reader_returns_nothing_once_the_wait_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path()).unwrap();
    let mut reader = log.reader(T, 0);
    let started = std::time::Instant::now();
    let batch = reader
        .next_batch(10, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(batch.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(reader.position(), 0);
}

#[tokio::test]
async fn an_oversized_record_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path()).unwrap();
    let too_big = MAX_RECORD_BYTES + 1;
    let huge = Outgoing {
        payload: vec![0u8; too_big],
        ..rec(None, "")
    };
    let err = log
        .append(T, vec![rec(None, "fine"), huge])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        BusError::TooLarge { size, max } if size == too_big && max == MAX_RECORD_BYTES
    ));
    let huge_key = Outgoing {
        key: Some(vec![0u8; too_big]),
        ..rec(None, "")
    };
    let err = log.append(T, vec![huge_key]).await;
    assert!(matches!(err, Err(BusError::TooLarge { .. })));
    assert_eq!(log.end_offset(T), 0);
    let path = dir.path().join(format!("{T}.log"));
    assert_eq!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0), 0);

    // The largest allowed payload still goes through and reads back whole.
    let biggest = Outgoing {
        payload: vec![7u8; MAX_RECORD_BYTES],
        ..rec(None, "")
    };
    assert_eq!(log.append(T, vec![biggest]).await.unwrap(), vec![0]);
    assert_eq!(read_all(&log, T).await[0].payload.len(), MAX_RECORD_BYTES);
}

#[tokio::test]
async fn a_topic_name_with_a_path_separator_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path()).unwrap();
    for name in ["a/b", "a\\b", "..", "../escape", ""] {
        let err = log.append(name, vec![rec(None, "x")]).await.unwrap_err();
        assert!(
            matches!(&err, BusError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidInput),
            "{name:?}: {err}"
        );
        let mut reader = log.reader(name, 0);
        let err = reader.next_batch(1, Duration::ZERO).await.unwrap_err();
        assert!(matches!(err, BusError::Io { .. }), "{name:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn topics_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path()).unwrap();
    let dlq = "sevloop.tickets.dlq";
    let tickets = vec![rec(None, "t0"), rec(None, "t1")];
    assert_eq!(log.append(T, tickets).await.unwrap(), vec![0, 1]);
    assert_eq!(
        log.append(dlq, vec![rec(None, "d0")]).await.unwrap(),
        vec![0]
    );
    assert_eq!((log.end_offset(T), log.end_offset(dlq)), (2, 1));
    assert_eq!(payloads(&read_all(&log, T).await), vec![&b"t0"[..], b"t1"]);
    let dead = read_all(&log, dlq).await;
    assert_eq!(payloads(&dead), vec![&b"d0"[..]]);
    assert_eq!(dead[0].topic, dlq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_distinct_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path()).unwrap();
    let mut reader = log.reader(T, 0);
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut offsets = Vec::new();
                for i in 0..10 {
                    let batch = vec![rec(None, &format!("{task}-{i}")), rec(None, "pair")];
                    offsets.extend(log.append(T, batch).await.unwrap());
                }
                offsets
            })
        })
        .collect();
    let mut seen = Vec::new();
    while seen.len() < 160 {
        seen.extend(reader.next_batch(7, Duration::from_secs(5)).await.unwrap());
    }
    let mut offsets = Vec::new();
    for task in tasks {
        offsets.extend(task.await.unwrap());
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..160).collect::<Vec<i64>>());
    assert_eq!(seen.iter().map(|r| r.offset).collect::<Vec<_>>(), offsets);
    // Each batch stays contiguous: its "pair" record directly follows its first record.
    for pair in seen.chunks(2) {
        assert_eq!(pair[1].payload, b"pair");
    }
    let reopened = EmbeddedLog::open(dir.path()).unwrap();
    assert_eq!(read_all(&reopened, T).await.len(), 160);
}
