//! Reading JSON-lines data files: one JSON object per line, keys named by [`Columns`].

use std::path::Path;

use serde_json::{Map, Value};

use super::reader::{check_text, flag_value, label_value, list_names, split_labels};
use super::{Columns, Dataset, Example};
use crate::error::{Error, Location, Result};

/// Reads the records of a JSON-lines file (BOM already removed). Blank lines are skipped.
pub(super) fn read(path: &Path, bytes: &[u8], cols: &Columns, require_label: bool) -> Result<Dataset> {
    let mut examples = Vec::new();
    let mut saw_id = false;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        if let Some((example, has_id)) = example(path, i as u64 + 1, raw, cols, require_label)? {
            saw_id |= has_id;
            examples.push(example);
        }
    }
    let id_column = (saw_id || cols.id.is_some()).then(|| cols.id.as_deref().unwrap_or("id").to_string());
    Ok(Dataset { path: path.to_path_buf(), examples, id_column, label_column: None })
}

/// The example of one line (without its `\n`; a trailing `\r` is ignored), `None` for a blank line; with
/// whether the object has the id key (shared by whole-file and streaming reading).
pub(super) fn example(path: &Path, line: u64, raw: &[u8], cols: &Columns, require_label: bool) -> Result<Option<(Example, bool)>> {
    let id_key = cols.id.as_deref().unwrap_or("id");
    let at = || Location::file(path).line(line);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = std::str::from_utf8(raw).map_err(|e| Error::parse(at(), "not valid UTF-8", e))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| Error::parse(at(), "invalid JSON", e))?;
    let Value::Object(object) = value else {
        return Err(Error::input(at(), format!("expected a JSON object, found {}", kind(&value))));
    };

    let text = string_field(path, line, &object, &cols.text)?;
    check_text(path, line, &cols.text, &text)?;
    let text_pair = match cols.text_pair.as_deref() {
        Some(key) => {
            let pair = string_field(path, line, &object, key)?;
            check_text(path, line, key, &pair)?;
            Some(pair)
        }
        None => None,
    };
    let (mut label, mut label_set) = (None, None);
    if let Some(keys) = &cols.label_columns {
        let mut set = Vec::new();
        for key in keys {
            let flag = match object.get(key) {
                Some(Value::Bool(b)) => *b,
                Some(v @ (Value::Number(_) | Value::String(_))) => {
                    flag_value(path, line, key, v.as_str().map_or_else(|| v.to_string(), str::to_string).as_str())?
                }
                None | Some(Value::Null) if !require_label => continue,
                None => return Err(missing_key(path, line, &object, key)),
                Some(other) => {
                    return Err(Error::input(Location::file(path).line(line).field(key), format!("expected 0 or 1, found {}", kind(other))))
                }
            };
            if flag {
                set.push(key.clone());
            }
        }
        label_set = Some(set);
    } else if let Some(key) = cols.label.as_deref() {
        match object.get(key) {
            Some(Value::Array(items)) => label_set = Some(list(path, line, key, items)?),
            value => {
                let raw = scalar(path, line, key, value, true)?;
                match (&cols.label_separator, raw) {
                    (Some(sep), Some(cell)) => label_set = Some(split_labels(&cell, sep)),
                    (_, raw) => label = label_value(path, line, key, raw.as_deref(), require_label)?,
                }
            }
        }
    }
    let (id, has_id) = match object.get(id_key) {
        Some(v) => (scalar(path, line, id_key, Some(v), false)?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()), true),
        None if cols.id.is_some() => return Err(missing_key(path, line, &object, id_key)),
        None => (None, false),
    };
    Ok(Some((Example { id, text, text_pair, label, label_set, line }, has_id)))
}

/// A label list: its items' string forms, trimmed, repeats dropped; an item that is not a label (null,
/// a nested list) is an error naming its index.
fn list(path: &Path, line: u64, key: &str, items: &[Value]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("{key}[{i}]");
        let name = match scalar(path, line, &field, Some(item), true)? {
            Some(name) if !name.trim().is_empty() => name.trim().to_string(),
            _ => return Err(Error::input(Location::file(path).line(line).field(&field), "empty label in the list")),
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// A required string-valued key.
fn string_field(path: &Path, line: u64, object: &Map<String, Value>, key: &str) -> Result<String> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(Error::input(
            Location::file(path).line(line).field(key),
            format!("expected a string, found {}", kind(other)),
        )),
        None => Err(missing_key(path, line, object, key)),
    }
}

fn missing_key(path: &Path, line: u64, object: &Map<String, Value>, key: &str) -> Error {
    Error::input(
        Location::file(path).line(line).field(key),
        format!("missing key `{key}`; this object has keys: {}", list_names(object.keys().map(String::as_str))),
    )
}

/// A label or id: a string, an integer, or (for labels) a boolean or a float (a regression target), in its
/// string form; `null` or an absent key is `None`.
fn scalar(path: &Path, line: u64, key: &str, value: Option<&Value>, label: bool) -> Result<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Bool(b)) if label => Ok(Some(b.to_string())),
        Some(Value::Number(n)) if label || n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => {
            let expected = if label { "a string, number or boolean" } else { "a string or integer" };
            Err(Error::input(
                Location::file(path).line(line).field(key),
                format!("expected {expected}, found {} `{other}`", kind(other)),
            ))
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::super::read_dataset;
    use super::*;

    fn read_with(content: &str, cols: &Columns, require_label: bool) -> Result<Dataset> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, content).expect("write test file");
        read_dataset(&path, cols, require_label)
    }

    fn read(content: &str) -> Result<Dataset> {
        read_with(content, &Columns::default(), true)
    }

    fn err(content: &str) -> String {
        match read(content) {
            Ok(d) => panic!("expected an error, read {:?}", d.examples),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn labels_may_be_strings_integers_or_booleans() {
        let d = read(
            "{\"text\": \"a\", \"label\": \"pos\"}\n\n{\"text\": \"b\", \"label\": 3}\r\n{\"text\": \"c\", \"label\": true}\n",
        )
        .expect("read");
        let labels: Vec<&str> = d.labels().collect();
        assert_eq!(labels, ["pos", "3", "true"]);
        let lines: Vec<u64> = d.examples.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 3, 4]);
    }

    #[test]
    fn float_labels_are_read_as_numbers_and_lists_as_label_sets() {
        let d = read("{\"text\": \"a\", \"label\": 1.5}\n{\"text\": \"b\", \"label\": -2e-1}\n").expect("floats");
        let labels: Vec<&str> = d.labels().collect();
        assert_eq!(labels, ["1.5", "-0.2"]);
        let d = read("{\"text\": \"a\", \"label\": [\"x\", 3, \"x\"]}\n{\"text\": \"b\", \"label\": []}\n").expect("lists");
        assert_eq!(d.examples[0].label_set.as_deref(), Some(["x".to_string(), "3".to_string()].as_slice()));
        assert_eq!(d.examples[1].label_set.as_deref(), Some([].as_slice()));
        assert!(d.has_labels() && d.has_label_sets());
        let e = err("{\"text\": \"a\", \"label\": [\"x\", null]}\n");
        assert!(e.contains("line 1") && e.contains("`label[1]`") && e.contains("empty label"), "{e}");
        let cols = Columns { label_columns: Some(vec!["x".into(), "y".into()]), ..Columns::default() };
        let d = read_with("{\"text\": \"a\", \"x\": 1, \"y\": false}\n", &cols, true).expect("columns");
        assert_eq!(d.examples[0].label_set.as_deref(), Some(["x".to_string()].as_slice()));
        let e = read_with("{\"text\": \"a\", \"x\": 2, \"y\": 0}\n", &cols, true).expect_err("bad flag").to_string();
        assert!(e.contains("line 1") && e.contains("`x`") && e.contains("expected 0 or 1"), "{e}");
        let cols = Columns { label_separator: Some("|".into()), ..Columns::default() };
        let d = read_with("{\"text\": \"a\", \"label\": \"x| y |\"}\n", &cols, true).expect("separated");
        assert_eq!(d.examples[0].label_set.as_deref(), Some(["x".to_string(), "y".to_string()].as_slice()));
    }

    #[test]
    fn invalid_json_reports_its_line() {
        let e = read("{\"text\": \"a\", \"label\": 1}\n\n{\"text\": \"b\", label: 2}\n").expect_err("bad json");
        assert!(matches!(e, Error::Parse { .. }));
        assert!(e.to_string().contains("data.jsonl, line 3"), "{e}");
    }

    #[test]
    fn non_objects_and_wrong_types_are_errors() {
        assert!(err("[1, 2]\n").contains("expected a JSON object, found an array"));
        let e = err("{\"text\": 5, \"label\": 1}\n");
        assert!(e.contains("`text`") && e.contains("expected a string"), "{e}");
        let e = err("{\"sentence\": \"x\", \"label\": 1}\n");
        assert!(e.contains("missing key `text`") && e.contains("`sentence`"), "{e}");
    }

    #[test]
    fn empty_text_and_missing_label() {
        assert!(err("{\"text\": \"  \", \"label\": 1}\n").contains("empty text"));
        let e = err("{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\"}\n");
        assert!(e.contains("line 2") && e.contains("missing label"), "{e}");
        let d = read_with("{\"text\": \"b\"}\n", &Columns::default(), false).expect("unlabeled");
        assert_eq!(d.examples[0].label, None);
    }

    #[test]
    fn ids_and_blank_files() {
        let d = read("{\"id\": 17, \"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": 1}\n").expect("read");
        assert_eq!(d.examples[0].id.as_deref(), Some("17"));
        assert_eq!(d.examples[1].id, None);
        assert_eq!(d.id_column.as_deref(), Some("id"));
        assert!(err("\n  \n").contains("no examples"));
    }
}
