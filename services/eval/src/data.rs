//! Readers for the labelled JSON-lines files under `/work/shared/data` and for stream truth files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::EvalError;

/// One labelled text, e.g. a row of `banking77/tickets.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Labelled {
    pub id: String,
    pub text: String,
    pub label: String,
}

#[derive(Deserialize)]
struct TruthRow {
    ticket_id: String,
    label: String,
}

/// Reads `{"id","text","label",...}` JSON lines (extra fields ignored, blank lines skipped).
pub fn read_labelled(path: &Path) -> Result<Vec<Labelled>, EvalError> {
    Ok(read_rows(path)?.into_iter().map(|(_, row)| row).collect())
}

/// Reads a truth file of `{"ticket_id","label",...}` lines into ticket_id → label. A ticket id
/// that appears twice is an error: one of the two labels would otherwise be dropped silently.
pub fn read_truth(path: &Path) -> Result<BTreeMap<String, String>, EvalError> {
    let mut truth = BTreeMap::new();
    for (line, row) in read_rows::<TruthRow>(path)? {
        if truth.contains_key(&row.ticket_id) {
            return Err(bad_line(
                path,
                line,
                format!("ticket_id {:?} appears a second time", row.ticket_id),
            ));
        }
        truth.insert(row.ticket_id, row.label);
    }
    Ok(truth)
}

/// Parses every non-blank line as `R`, keeping its 1-based line number for later errors.
fn read_rows<R: DeserializeOwned>(path: &Path) -> Result<Vec<(usize, R)>, EvalError> {
    let io = |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let mut rows = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(&line)
            .map_err(|e| bad_line(path, line_no, format!("not a valid row: {e}")))?;
        rows.push((line_no, row));
    }
    Ok(rows)
}

fn bad_line(path: &Path, line: usize, message: String) -> EvalError {
    EvalError::BadLine {
        path: path.to_path_buf(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(contents.as_bytes())
            .expect("write temp file");
        file
    }

    #[test]
    fn labelled_rows_are_read_and_extra_fields_ignored() {
        let file = file_with(concat!(
            r#"{"id": "a", "text": "card lost", "label": "lost", "product": "cards"}"#,
            "\n\n",
            r#"{"id": "b", "text": "top up failed", "label": "top_up"}"#,
            "\n"
        ));
        let rows = read_labelled(file.path()).expect("valid file");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].id, "b");
        assert_eq!(rows[0].label, "lost");
    }

    #[test]
    fn a_bad_labelled_line_is_named_by_number_and_reason() {
        let file = file_with(concat!(
            r#"{"id": "a", "text": "x", "label": "l"}"#,
            "\n",
            r#"{"id": "b", "text": "y", "label": "l"}"#,
            "\n",
            r#"{"id": "c", "text": "z"}"#,
            "\n"
        ));
        let err = read_labelled(file.path()).expect_err("line 3 has no label");
        assert!(matches!(err, EvalError::BadLine { line: 3, .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("line 3") && message.contains("label"),
            "{message}"
        );
    }

    #[test]
    fn malformed_json_is_named_by_line_number() {
        let file = file_with("{\"id\": \"a\", \"text\": \"x\", \"label\": \"l\"}\n{oops\n");
        let err = read_labelled(file.path()).expect_err("line 2 is not JSON");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = read_labelled(Path::new("/nonexistent/sevloop/x.jsonl")).expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/sevloop/x.jsonl"),
            "{err}"
        );
    }

    #[test]
    fn truth_maps_ticket_ids_to_labels() {
        let file = file_with(concat!(
            r#"{"ticket_id": "t1", "label": "a", "injected": false}"#,
            "\n",
            r#"{"ticket_id": "t2", "label": "b", "injected": true}"#,
            "\n"
        ));
        let truth = read_truth(file.path()).expect("valid file");
        assert_eq!(truth.get("t2").map(String::as_str), Some("b"));
        assert_eq!(truth.len(), 2);
    }

    #[test]
    fn truth_errors_name_the_line() {
        let file = file_with(concat!(
            r#"{"ticket_id": "t1", "label": "a"}"#,
            "\n",
            r#"{"ticket_id": 7, "label": "b"}"#,
            "\n"
        ));
        let err = read_truth(file.path()).expect_err("ticket_id is a number");
        assert!(matches!(err, EvalError::BadLine { line: 2, .. }), "{err}");
    }

    #[test]
    fn duplicate_truth_ids_are_rejected() {
        let file = file_with(concat!(
            r#"{"ticket_id": "t1", "label": "a"}"#,
            "\n",
            r#"{"ticket_id": "t1", "label": "b"}"#,
            "\n"
        ));
        let err = read_truth(file.path()).expect_err("t1 twice");
        assert!(matches!(err, EvalError::BadLine { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("t1"), "{err}");
    }
}
