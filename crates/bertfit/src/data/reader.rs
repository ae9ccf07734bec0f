//! Reading a data file into a [`Dataset`]: format detection, CSV/TSV parsing and the per-record checks
//! shared with the JSON-lines reader.

use std::path::Path;

use super::{jsonl, Columns, Dataset, Example};
use crate::error::{Error, Location, Result};

/// A data file format, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row (`.csv`); RFC 4180 quoting, so fields may hold commas,
    /// doubled quotes and newlines.
    Csv,
    /// Tab-separated values with a header row (`.tsv`, `.tab`). Quotes have no special meaning (as in
    /// the IANA TSV format and the GLUE files), so fields cannot hold tabs or newlines.
    Tsv,
    /// One JSON object per line (`.jsonl`, `.ndjson`); blank lines are skipped.
    JsonLines,
}

impl Format {
    /// The format named by `path`'s extension (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("tsv") | Some("tab") => Ok(Format::Tsv),
            Some("jsonl") | Some("ndjson") => Ok(Format::JsonLines),
            other => {
                let found = match other {
                    Some(e) => format!("extension `.{e}`"),
                    None => "no extension".to_string(),
                };
                Err(Error::input(
                    Location::file(path),
                    format!("unsupported data file ({found}): expected .csv, .tsv, .tab, .jsonl or .ndjson"),
                ))
            }
        }
    }
}

/// Reads the examples of a `.csv`, `.tsv`/`.tab` or `.jsonl`/`.ndjson` file (see [`Format`]).
///
/// A UTF-8 byte-order mark is ignored and lines may end in LF or CRLF. Every record must have a
/// non-blank text (and text pair, when [`Columns::text_pair`] is set). With `require_label`, the label
/// column must exist and every record must have a label; without it, a missing label column (or an
/// empty cell) gives `None` labels, as for prediction. Labels and ids are stored trimmed.
///
/// Errors name the file, the 1-based line where the offending record starts and the column at fault.
pub fn read_dataset(path: &Path, cols: &Columns, require_label: bool) -> Result<Dataset> {
    if require_label && !cols.reads_labels() {
        return Err(Error::config("label_column", "labels are required but no label column is set"));
    }
    let format = Format::from_path(path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(&bytes);
    let mut dataset = match format {
        Format::Csv => read_delimited(path, bytes, b',', true, cols, require_label)?,
        Format::Tsv => read_delimited(path, bytes, b'\t', false, cols, require_label)?,
        Format::JsonLines => jsonl::read(path, bytes, cols, require_label)?,
    };
    if dataset.examples.is_empty() {
        return Err(Error::input(Location::file(path), "no examples: the file has no records"));
    }
    dataset.label_column = cols.label.clone();
    Ok(dataset)
}

/// Checks that a text cell is not blank.
pub(super) fn check_text(path: &Path, line: u64, field: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::input(Location::file(path).line(line).field(field), "empty text"));
    }
    Ok(())
}

/// Turns a raw label cell into the stored label: trimmed, and `None` when blank. A missing label is an
/// error when labels are required.
pub(super) fn label_value(
    path: &Path,
    line: u64,
    field: &str,
    raw: Option<&str>,
    require_label: bool,
) -> Result<Option<String>> {
    let label = raw.map(str::trim).filter(|s| !s.is_empty());
    match label {
        Some(l) => Ok(Some(l.to_string())),
        None if require_label => Err(Error::input(Location::file(path).line(line).field(field), "missing label")),
        None => Ok(None),
    }
}

/// Formats names as "`a`, `b`, `c`", for listing what is available.
/// The set of a separated multi-label cell: trimmed names, empty ones and repeats dropped.
pub(super) fn split_labels(cell: &str, separator: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in cell.split(separator).map(str::trim).filter(|n| !n.is_empty()) {
        if !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// One cell of a 0/1 label column: `1`/`0`, `true`/`false` (any case, surrounding spaces ignored).
pub(super) fn flag_value(path: &Path, line: u64, field: &str, raw: &str) -> Result<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "1.0" => Ok(true),
        "0" | "false" | "0.0" => Ok(false),
        "" => Err(Error::input(Location::file(path).line(line).field(field), "missing value: a label column holds 0 or 1")),
        other => Err(Error::input(Location::file(path).line(line).field(field), format!("expected 0 or 1 in a label column, found `{other}`"))),
    }
}

pub(super) fn list_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Column positions resolved against a header row.
#[derive(Debug)]
struct Layout {
    text: usize,
    text_pair: Option<usize>,
    label: Option<usize>,
    /// The 0/1 label columns, with their label names.
    label_columns: Option<Vec<(usize, String)>>,
    label_separator: Option<String>,
    id: Option<(usize, String)>,
}

fn read_delimited(
    path: &Path,
    bytes: &[u8],
    delimiter: u8,
    quoting: bool,
    cols: &Columns,
    require_label: bool,
) -> Result<Dataset> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(quoting)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut lines = LineCounter::new(bytes);
    let mut record = csv::ByteRecord::new();

    let csv_error = |e: csv::Error| {
        let mut at = Location::file(path);
        if let Some(pos) = e.position() {
            at = at.line(pos.line());
        }
        Error::parse(at, "malformed record", e)
    };

    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(Error::input(Location::file(path), "no examples: the file is empty"));
    }
    let header_line = lines.record_start(&record);
    let table = Delimited::from_header(path, header_line, &record, delimiter, quoting, cols, require_label)?;
    let mut examples = Vec::new();
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let line = lines.record_start(&record);
        examples.push(table.example(path, line, &record, require_label)?);
    }
    Ok(Dataset { path: path.to_path_buf(), examples, id_column: table.id_column(), label_column: None })
}

/// A CSV/TSV table's header, resolved against the wanted columns: turns each later record into an
/// [`Example`] (shared by whole-file and streaming reading).
#[derive(Debug)]
pub(super) struct Delimited {
    headers: Vec<String>,
    layout: Layout,
    quoting: bool,
}

impl Delimited {
    /// Reads the header record (at `header_line`).
    pub(super) fn from_header(
        path: &Path,
        header_line: u64,
        record: &csv::ByteRecord,
        delimiter: u8,
        quoting: bool,
        cols: &Columns,
        require_label: bool,
    ) -> Result<Self> {
        let mut headers = Vec::with_capacity(record.len());
        for cell in record.iter() {
            let name = std::str::from_utf8(cell)
                .map_err(|e| Error::parse(Location::file(path).line(header_line), "the header is not valid UTF-8", e))?;
            headers.push(name.trim().to_string());
        }
        let layout = resolve_columns(path, header_line, &headers, delimiter, cols, require_label)?;
        Ok(Delimited { headers, layout, quoting })
    }

    /// The id column used, if any.
    pub(super) fn id_column(&self) -> Option<String> {
        self.layout.id.as_ref().map(|(_, name)| name.clone())
    }

    /// The example of a record starting at `line`.
    pub(super) fn example(&self, path: &Path, line: u64, record: &csv::ByteRecord, require_label: bool) -> Result<Example> {
        let (headers, layout) = (&self.headers, &self.layout);
        if record.len() != headers.len() {
            let hint = if self.quoting && record.len() < headers.len() { " (is a quote left open?)" } else { "" };
            return Err(Error::input(
                Location::file(path).line(line),
                format!("expected {} fields as in the header, found {}{hint}", headers.len(), record.len()),
            ));
        }
        let cell = |i: usize| -> Result<&str> {
            std::str::from_utf8(record.get(i).unwrap_or_default())
                .map_err(|e| Error::parse(Location::file(path).line(line).field(&headers[i]), "not valid UTF-8", e))
        };
        let text = cell(layout.text)?;
        check_text(path, line, &headers[layout.text], text)?;
        let text_pair = match layout.text_pair {
            Some(i) => {
                let pair = cell(i)?;
                check_text(path, line, &headers[i], pair)?;
                Some(pair.to_string())
            }
            None => None,
        };
        let (mut label, mut label_set) = (None, None);
        if let Some(columns) = &layout.label_columns {
            let mut set = Vec::new();
            for (i, name) in columns {
                if flag_value(path, line, name, cell(*i)?)? {
                    set.push(name.clone());
                }
            }
            label_set = Some(set);
        } else if let Some(i) = layout.label {
            match &layout.label_separator {
                // an empty cell is the empty set, not a missing label
                Some(sep) => label_set = Some(split_labels(cell(i)?, sep)),
                None => label = label_value(path, line, &headers[i], Some(cell(i)?), require_label)?,
            }
        }
        let id = match &layout.id {
            Some((i, _)) => Some(cell(*i)?.trim()).filter(|s| !s.is_empty()).map(str::to_string),
            None => None,
        };
        Ok(Example { id, text: text.to_string(), text_pair, label, label_set, line })
    }
}

fn resolve_columns(
    path: &Path,
    header_line: u64,
    headers: &[String],
    delimiter: u8,
    cols: &Columns,
    require_label: bool,
) -> Result<Layout> {
    let find = |name: &str| -> Result<Option<usize>> {
        let mut hits = headers.iter().enumerate().filter(|(_, h)| h.as_str() == name).map(|(i, _)| i);
        let first = hits.next();
        if first.is_some() && hits.next().is_some() {
            return Err(Error::input(
                Location::file(path).line(header_line).field(name),
                "the column appears more than once in the header",
            ));
        }
        Ok(first)
    };
    let missing = |role: &str, name: &str| {
        let other = if delimiter == b',' { '\t' } else { ',' };
        let hint = if headers.len() == 1 && headers[0].contains(other) {
            if delimiter == b',' {
                " (the header has tabs: is this a .tsv file?)"
            } else {
                " (the header has commas: is this a .csv file?)"
            }
        } else {
            ""
        };
        Error::input(
            Location::file(path).line(header_line).field(name),
            format!(
                "no {role} column `{name}`; available columns: {}{hint}",
                list_names(headers.iter().map(String::as_str))
            ),
        )
    };
    let require = |role: &str, name: &str| find(name)?.ok_or_else(|| missing(role, name));

    let text = require("text", &cols.text)?;
    let text_pair = cols.text_pair.as_deref().map(|name| require("text pair", name)).transpose()?;
    let label_columns = match &cols.label_columns {
        Some(names) if require_label => Some(names.iter().map(|n| Ok((require("label", n)?, n.clone()))).collect::<Result<Vec<_>>>()?),
        // unlabeled reading (predict) uses the label columns only when all are present
        Some(names) => names.iter().map(|n| find(n).map(|i| i.map(|i| (i, n.clone())))).collect::<Result<Option<Vec<_>>>>()?,
        None => None,
    };
    let label = match cols.label.as_deref() {
        _ if cols.label_columns.is_some() => None,
        Some(name) if require_label => Some(require("label", name)?),
        Some(name) => find(name)?,
        None => None,
    };
    let id = match cols.id.as_deref() {
        Some(name) => Some((require("id", name)?, name.to_string())),
        None => find("id")?.map(|i| (i, "id".to_string())),
    };
    Ok(Layout { text, text_pair, label, label_columns, label_separator: cols.label_separator.clone(), id })
}

/// Maps the byte offset where the csv reader began a record to the 1-based line of the record's first
/// byte. The reader resumes right after the previous record's terminator, possibly before a `\n` of a
/// CRLF or blank lines, so those are skipped here. Offsets only grow, so counting is incremental.
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter { bytes, offset: 0, line: 1 }
    }

    fn record_start(&mut self, record: &csv::ByteRecord) -> u64 {
        let from = record.position().map_or(self.offset, |p| p.byte() as usize).clamp(self.offset, self.bytes.len());
        let (start, newlines) = advance(&self.bytes[self.offset..], from - self.offset);
        self.line += newlines;
        self.offset += start;
        self.line
    }
}

/// Where a record really starts in `window` when the reader resumed at `from` (past line ends and blank
/// lines), and the newlines before it.
pub(super) fn advance(window: &[u8], from: usize) -> (usize, u64) {
    let rest = &window[from..];
    let start = from + rest.iter().position(|&b| b != b'\n' && b != b'\r').unwrap_or(rest.len());
    (start, window[..start].iter().filter(|&&b| b == b'\n').count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write test file");
        path
    }

    fn read(name: &str, content: &str) -> Result<Dataset> {
        let dir = tempfile::tempdir().expect("tempdir");
        read_dataset(&write(&dir, name, content.as_bytes()), &Columns::default(), true)
    }

    fn err(name: &str, content: &str) -> String {
        match read(name, content) {
            Ok(d) => panic!("expected an error, read {:?}", d.examples),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_quoted_fields_and_reports_record_start_lines() {
        let d =
            read("train.csv", "text,label\n\"Hello, world\",pos\n\"She said \"\"hi\"\"\nand left\",neg\nplain,pos\n")
                .expect("read");
        let texts: Vec<&str> = d.examples.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["Hello, world", "She said \"hi\"\nand left", "plain"]);
        let lines: Vec<u64> = d.examples.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 5]);
        assert_eq!(d.examples[1].label.as_deref(), Some("neg"));
        assert_eq!(d.id_column, None);
    }

    #[test]
    fn bom_crlf_and_blank_lines() {
        let d = read("t.csv", "\u{feff}text,label\r\na,1\r\n\r\nb,2\r\n").expect("read");
        assert_eq!(d.examples.len(), 2);
        assert_eq!(d.examples[0].text, "a");
        assert_eq!((d.examples[0].line, d.examples[1].line), (2, 4));
        assert_eq!(d.examples[1].label.as_deref(), Some("2"));
        let e = err("t.csv", "\u{feff}text,label\r\na,1\r\n\r\n,2\r\n");
        assert!(e.contains("line 4") && e.contains("`text`") && e.contains("empty text"), "{e}");
    }

    #[test]
    fn tsv_keeps_quotes_literal() {
        let d = read("t.tsv", "id\tlabel\ttext\n7\tpos\t\"quoted\" start, comma\n").expect("read");
        assert_eq!(d.examples[0].text, "\"quoted\" start, comma");
        assert_eq!(d.examples[0].id.as_deref(), Some("7"));
        assert_eq!(d.id_column.as_deref(), Some("id"));
    }

    #[test]
    fn missing_column_lists_available_columns() {
        let e = err("t.csv", "sentence,label\nhi,1\n");
        assert!(e.contains("t.csv") && e.contains("`text`") && e.contains("`sentence`, `label`"), "{e}");
        let e = err("t.csv", "text\tlabel\nhi\t1\n");
        assert!(e.contains(".tsv file?"), "{e}");
        let e = err("t.csv", "text,text,label\nhi,hi,1\n");
        assert!(e.contains("more than once"), "{e}");
    }

    #[test]
    fn wrong_field_count_names_the_line() {
        let e = err("t.csv", "text,label\na,1\nb,2,3\n");
        assert!(e.contains("t.csv, line 3") && e.contains("expected 2 fields"), "{e}");
    }

    #[test]
    fn empty_file_and_header_only_have_no_examples() {
        assert!(err("t.csv", "").contains("no examples"));
        assert!(err("t.csv", "\u{feff}").contains("no examples"));
        assert!(err("t.csv", "text,label\n").contains("no examples"));
    }

    #[test]
    fn missing_labels_are_errors_only_when_required() {
        let e = err("t.csv", "text,label\na,1\nb,\n");
        assert!(e.contains("line 3") && e.contains("`label`") && e.contains("missing label"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "p.csv", b"text\nhello\n");
        let d = read_dataset(&path, &Columns::default(), false).expect("read");
        assert_eq!(d.examples[0].label, None);
        assert!(read_dataset(&path, &Columns::default(), true).is_err());
        let no_label = Columns { label: None, ..Columns::default() };
        assert!(matches!(read_dataset(&path, &no_label, true), Err(Error::Config { .. })));
    }

    #[test]
    fn separated_labels_and_label_columns_read_as_sets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "m.csv", b"text,label\na,x|y\nb,\nc, y | y \n");
        let cols = Columns { label_separator: Some("|".into()), ..Columns::default() };
        let d = read_dataset(&path, &cols, true).expect("read");
        let sets: Vec<Vec<String>> = d.examples.iter().map(|e| e.label_set.clone().expect("set")).collect();
        assert_eq!(sets, [vec!["x".to_string(), "y".to_string()], vec![], vec!["y".to_string()]]);
        let path = write(&dir, "f.csv", b"text,x,y\na,1,0\nb,true,TRUE\nc,0,2\n");
        let cols = Columns { label_columns: Some(vec!["x".into(), "y".into()]), ..Columns::default() };
        let e = read_dataset(&path, &cols, true).expect_err("2 is not a flag").to_string();
        assert!(e.contains("line 4") && e.contains("field `y`") && e.contains("expected 0 or 1"), "{e}");
        let path = write(&dir, "g.csv", b"text,x,y\na,1,0\nb,true,TRUE\n");
        let d = read_dataset(&path, &cols, true).expect("flags");
        assert_eq!(d.examples[1].label_set.as_deref(), Some(["x".to_string(), "y".to_string()].as_slice()));
        let missing = Columns { label_columns: Some(vec!["x".into(), "z".into()]), ..Columns::default() };
        let e = read_dataset(&path, &missing, true).expect_err("no z").to_string();
        assert!(e.contains("no label column `z`"), "{e}");
    }

    #[test]
    fn custom_columns_and_pairs() {
        let cols = Columns {
            text: "premise".into(),
            text_pair: Some("hypothesis".into()),
            label: Some("gold".into()),
            id: Some("uid".into()),
            ..Columns::default()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "nli.csv", b"uid,premise,hypothesis,gold\nx1,A man.,A person., entailment \n");
        let d = read_dataset(&path, &cols, true).expect("read");
        let e = &d.examples[0];
        assert_eq!((e.text.as_str(), e.text_pair.as_deref()), ("A man.", Some("A person.")));
        assert_eq!((e.id.as_deref(), e.label.as_deref()), (Some("x1"), Some("entailment")));
        assert_eq!(d.id_column.as_deref(), Some("uid"));
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "t.csv", b"text,label\nok,1\ncaf\xe9,1\n");
        let e = read_dataset(&path, &Columns::default(), true).expect_err("latin-1");
        assert!(e.to_string().contains("line 3") && e.to_string().contains("UTF-8"), "{e}");
    }

    #[test]
    fn unknown_extension_names_the_file() {
        let e = err("data.parquet", "x");
        assert!(e.contains("data.parquet") && e.contains("`.parquet`"), "{e}");
        assert_eq!(Format::from_path(Path::new("a/B.TSV")).expect("tsv"), Format::Tsv);
    }

    #[test]
    fn unreadable_file_is_an_io_error() {
        let e = read_dataset(Path::new("/nonexistent/x.csv"), &Columns::default(), true).expect_err("missing");
        assert!(matches!(e, Error::Io { .. }));
    }
}
