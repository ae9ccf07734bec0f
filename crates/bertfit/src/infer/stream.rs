//! Prediction over a stream of records in bounded memory: records are taken in fixed chunks (chunk k
//! holds records k·C … k·C + C − 1 of the input), each chunk tokenized, scored by a [`Session`] and
//! formatted as prediction rows (CSV or JSON lines). Because chunks are fixed by record index, a shard
//! or a resumed run computes every record in the same batch as a plain run: outputs are byte-identical.

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use super::output::{probs_header, probs_row};
use super::output::{Readout, SET_SEPARATOR};
use super::score::label_set;
use super::session::Session;
use crate::data::{Example, ProblemType};
use crate::error::{Error, Result};
use crate::tokenize::Side;

/// The format of prediction rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowFormat {
    /// A header line, then `id,label,prob_<label>...` (the id column only when the input has one).
    Csv,
    /// One JSON object per line with the CSV's keys; probabilities as numbers (`null` for NaN).
    Jsonl,
}

impl RowFormat {
    /// Parses `csv` or `jsonl`.
    pub fn parse(s: &str) -> std::result::Result<RowFormat, String> {
        match s {
            "csv" => Ok(RowFormat::Csv),
            "jsonl" | "ndjson" => Ok(RowFormat::Jsonl),
            other => Err(format!("`{other}`: expected csv or jsonl")),
        }
    }

    /// The format an output path's extension names (`.jsonl`/`.ndjson`), else CSV.
    pub fn for_path(path: &Path) -> RowFormat {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl") | Some("ndjson") => RowFormat::Jsonl,
            _ => RowFormat::Csv,
        }
    }
}

/// Formats prediction rows.
#[derive(Debug, Clone)]
pub struct Rows {
    format: RowFormat,
    id_column: Option<String>,
    labels: Vec<String>,
    problem: ProblemType,
    thresholds: Option<Vec<f32>>,
    separator: String,
}

impl Rows {
    /// Rows of `format` for a single-label model with `labels`, carrying `id_column` when the input has
    /// one.
    pub fn new(format: RowFormat, id_column: Option<String>, labels: Vec<String>) -> Self {
        Rows { format, id_column, labels, problem: ProblemType::SingleLabel, thresholds: None, separator: SET_SEPARATOR.into() }
    }

    /// Rows for another problem type: multi-label rows carry the predicted set (`labels`: joined by
    /// `separator` in CSV, a list in JSON lines) at `thresholds` (0.5 where absent) and every label's
    /// probability; regression rows carry `prediction`, the value.
    pub fn for_problem(self, problem: ProblemType, thresholds: Option<Vec<f32>>, separator: &str) -> Self {
        Rows { problem, thresholds, separator: separator.to_string(), ..self }
    }

    fn key(&self) -> &'static str {
        match self.problem {
            ProblemType::SingleLabel => "label",
            ProblemType::MultiLabel => "labels",
            ProblemType::Regression => "prediction",
        }
    }

    /// The header (CSV; nothing for JSON lines).
    pub fn header(&self) -> Vec<u8> {
        match self.format {
            RowFormat::Jsonl => Vec::new(),
            RowFormat::Csv => {
                let mut cells: Vec<String> = self.id_column.iter().cloned().collect();
                cells.push(self.key().into());
                if self.problem != ProblemType::Regression {
                    cells.extend(probs_header(&self.labels));
                }
                csv_line(&cells)
            }
        }
    }

    /// The rows of `examples` with their probabilities.
    pub fn rows(&self, examples: &[Example], probs: &[Vec<f32>]) -> Vec<u8> {
        let mut out = Vec::new();
        let readout = Readout::of(self.problem, self.thresholds.as_deref(), &self.separator);
        let with_probs = readout.has_probabilities();
        for (ex, p) in examples.iter().zip(probs) {
            let label = readout.pred(p, &self.labels);
            match self.format {
                RowFormat::Csv => {
                    let mut cells: Vec<String> = Vec::with_capacity(self.labels.len() + 2);
                    if self.id_column.is_some() {
                        cells.push(ex.id.clone().unwrap_or_default());
                    }
                    cells.push(label);
                    if with_probs {
                        cells.extend(probs_row(p));
                    }
                    out.extend(csv_line(&cells));
                }
                RowFormat::Jsonl => {
                    let mut obj = serde_json::Map::new();
                    if let Some(c) = &self.id_column {
                        obj.insert(c.clone(), ex.id.clone().map_or(serde_json::Value::Null, serde_json::Value::String));
                    }
                    let value = match self.problem {
                        ProblemType::SingleLabel => serde_json::Value::String(label),
                        ProblemType::MultiLabel => {
                            let set = label_set(p, self.thresholds.as_deref());
                            serde_json::Value::Array(set.iter().zip(&self.labels).filter(|(on, _)| **on).map(|(_, l)| serde_json::Value::String(l.clone())).collect())
                        }
                        ProblemType::Regression => p.first().and_then(|&v| serde_json::Number::from_f64(v as f64)).map_or(serde_json::Value::Null, serde_json::Value::Number),
                    };
                    obj.insert(self.key().into(), value);
                    for (key, x) in probs_header(&self.labels).zip(probs_row(p)).take(if with_probs { usize::MAX } else { 0 }) {
                        // six decimals, as in the CSV; parsed back so that the JSON holds a plain number
                        let v = x.parse::<f64>().ok().and_then(serde_json::Number::from_f64);
                        obj.insert(key, v.map_or(serde_json::Value::Null, serde_json::Value::Number));
                    }
                    out.extend(serde_json::Value::Object(obj).to_string().into_bytes());
                    out.push(b'\n');
                }
            }
        }
        out
    }
}

/// One CSV line with RFC 4180 quoting where needed.
fn csv_line(cells: &[String]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    // writing to memory cannot fail
    let _ = w.write_record(cells);
    w.into_inner().unwrap_or_default()
}

/// Which records a shard takes: shard `index` of `count` gets a contiguous run of whole chunks (chunks of
/// `chunk` records; `total` records in all), so that the shards' outputs, in order, are the plain run's.
pub fn shard_range(total: u64, chunk: u64, index: u64, count: u64) -> Range<u64> {
    let chunk = chunk.max(1);
    let count = count.max(1);
    let chunks = total.div_ceil(chunk);
    let first = chunks * index / count;
    let end = chunks * (index + 1) / count;
    (first * chunk).min(total)..(end * chunk).min(total)
}

/// Scores the records of `range` (by index in `records`; `range.start` a multiple of `chunk`), one chunk
/// at a time, handing each chunk's examples and mean probabilities to `emit`. Returns the records
/// scored.
pub fn predict_records(
    session: &mut Session<'_>,
    records: impl Iterator<Item = Result<Example>>,
    range: Range<u64>,
    chunk: usize,
    batch_size: usize,
    mut emit: impl FnMut(&[Example], &[Vec<f32>]) -> Result<()>,
) -> Result<u64> {
    let chunk = chunk.max(1);
    if !range.start.is_multiple_of(chunk as u64) {
        return Err(Error::config("chunk", format!("a stream starts at a chunk boundary, not at record {}", range.start)));
    }
    let mut records = records.enumerate().take_while(|(i, _)| (*i as u64) < range.end);
    // records before the range are read (and checked) but not scored
    for (_, r) in records.by_ref().take(range.start as usize) {
        r?;
    }
    let mut records = records.map(|(_, r)| r);
    let mut done = 0;
    loop {
        let mut examples = Vec::with_capacity(chunk);
        for r in records.by_ref().take(chunk) {
            examples.push(r?);
        }
        if examples.is_empty() {
            return Ok(done);
        }
        let texts: Vec<(&str, Option<&str>)> = examples.iter().map(|e| (e.text.as_str(), e.text_pair.as_deref())).collect();
        let probs: Vec<Vec<f32>> = if session.chunked() {
            // long texts as windows, pooled per record
            session.text_scores(&texts, batch_size)?
        } else {
            let encoded = session.encoders().encode(&texts, Side::Right)?;
            session.scores(&encoded, batch_size)?.into_iter().map(|s| s.probs).collect()
        };
        emit(&examples, &probs)?;
        done += examples.len() as u64;
        if examples.len() < chunk {
            return Ok(done);
        }
    }
}

/// Writes `bytes` to `out`, naming `target` in errors.
pub fn write_all(out: &mut dyn Write, target: &Path, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes).map_err(|e| Error::io("cannot write predictions", target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_tile_the_input_in_whole_chunks() {
        for total in [0u64, 1, 9, 10, 11, 100, 1001] {
            for count in [1u64, 2, 3, 7] {
                let ranges: Vec<Range<u64>> = (0..count).map(|i| shard_range(total, 10, i, count)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[count as usize - 1].end, total);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "{total} {count}");
                }
                for r in &ranges {
                    assert!(r.start.is_multiple_of(10) || r.start == total, "{r:?}");
                }
            }
        }
        assert_eq!(shard_range(100, 10, 1, 3), 30..60);
    }

    #[test]
    fn rows_as_csv_and_json_lines() {
        let ex = |id: Option<&str>| Example { id: id.map(str::to_string), text: "t".into(), text_pair: None, label: None, label_set: None, line: 2 };
        let labels = vec!["neg".to_string(), "pos, really".to_string()];
        let probs = vec![vec![0.25, 0.75], vec![f32::NAN, 0.5]];
        let csv = Rows::new(RowFormat::Csv, Some("id".into()), labels.clone());
        assert_eq!(String::from_utf8(csv.header()).expect("utf8"), "id,label,prob_neg,\"prob_pos, really\"\n");
        let body = String::from_utf8(csv.rows(&[ex(Some("a")), ex(None)], &probs)).expect("utf8");
        assert_eq!(body, "a,\"pos, really\",0.250000,0.750000\n,\"pos, really\",NaN,0.500000\n");
        let jsonl = Rows::new(RowFormat::Jsonl, Some("id".into()), labels);
        assert!(jsonl.header().is_empty());
        let body = String::from_utf8(jsonl.rows(&[ex(Some("a")), ex(None)], &probs)).expect("utf8");
        let lines: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(lines[0], serde_json::json!({"id": "a", "label": "pos, really", "prob_neg": 0.25, "prob_pos, really": 0.75}));
        assert_eq!(lines[1]["id"], serde_json::Value::Null);
        assert_eq!(lines[1]["prob_neg"], serde_json::Value::Null);
    }
}
