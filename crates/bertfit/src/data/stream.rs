//! Reading examples one record at a time from a file or standard input, in bounded memory: prediction
//! over inputs too large to load (a 10 GB JSON-lines file, a pipe from a distributed engine). The
//! per-record checks and error locations are those of [`super::read_dataset`]; labels are not required.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::reader::Delimited;
use super::{jsonl, Columns, Example, Format};
use crate::error::{Error, Location, Result};

/// Where records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file, its format from its extension unless given.
    File(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Source {
    /// `-` is standard input; anything else a file.
    pub fn from_arg(arg: &Path) -> Source {
        if arg == Path::new("-") {
            Source::Stdin
        } else {
            Source::File(arg.to_path_buf())
        }
    }

    /// The name errors use: the path, or `<stdin>`.
    pub fn name(&self) -> PathBuf {
        match self {
            Source::File(p) => p.clone(),
            Source::Stdin => PathBuf::from("<stdin>"),
        }
    }
}

/// The bytes the CSV reader has read and not yet passed: a [`Tap`] feeds them, [`Records`] counts the
/// lines up to each record's start, as the whole-file reader does.
#[derive(Debug, Default)]
struct Window {
    /// Bytes from `head` on are not yet passed (those before it are dropped now and then).
    bytes: Vec<u8>,
    head: usize,
    /// Input offset and line of `bytes[head]`.
    offset: u64,
    line: u64,
}

impl Window {
    /// The 1-based line of the record whose reading resumed at byte `pos`.
    fn record_start(&mut self, pos: Option<u64>) -> u64 {
        let pending = &self.bytes[self.head..];
        let from = pos.unwrap_or(self.offset).clamp(self.offset, self.offset + pending.len() as u64);
        let (start, newlines) = super::reader::advance(pending, (from - self.offset) as usize);
        self.line += newlines;
        self.head += start;
        self.offset += start as u64;
        // drop passed bytes once they are most of the buffer: amortised O(1) per byte
        if self.head > 1 << 16 && self.head * 2 > self.bytes.len() {
            self.bytes.drain(..self.head);
            self.head = 0;
        }
        self.line
    }
}

/// A reader that copies what it reads into a shared [`Window`].
struct Tap<R> {
    inner: R,
    window: std::sync::Arc<std::sync::Mutex<Window>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        lock(&self.window).bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn lock(w: &std::sync::Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    // a panic while holding it leaves only a byte buffer behind: keep going
    w.lock().unwrap_or_else(|p| p.into_inner())
}

enum Reading {
    Delimited {
        reader: csv::Reader<Box<dyn Read + Send>>,
        table: Option<Delimited>,
        record: csv::ByteRecord,
        window: std::sync::Arc<std::sync::Mutex<Window>>,
    },
    Lines { reader: Box<dyn BufRead + Send>, line: u64, buf: Vec<u8>, pending: Option<Example> },
}

/// The examples of a source, in order, as an iterator that stops at the first error.
pub struct Records {
    name: PathBuf,
    cols: Columns,
    reading: Reading,
    id_column: Option<String>,
    failed: bool,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").field("name", &self.name).field("id_column", &self.id_column).finish()
    }
}

impl Records {
    /// Opens `source` (a UTF-8 byte-order mark is skipped) and reads its header: a CSV/TSV header row,
    /// or the first JSON-lines record, which decides whether there is an id column. `format` overrides
    /// the file's extension and is required for standard input.
    pub fn open(source: &Source, format: Option<Format>, cols: &Columns) -> Result<Records> {
        let name = source.name();
        let (format, raw): (Format, Box<dyn Read + Send>) = match source {
            Source::File(path) => {
                let format = match format {
                    Some(f) => f,
                    None => Format::from_path(path)?,
                };
                let file = std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
                (format, Box::new(file))
            }
            Source::Stdin => {
                let format = format.ok_or_else(|| Error::config("data-format", "standard input needs --data-format csv, tsv or jsonl"))?;
                (format, Box::new(std::io::stdin()))
            }
        };
        let mut buffered = BufReader::with_capacity(1 << 16, raw);
        let bom = buffered.fill_buf().map_err(|e| Error::io("cannot read", &name, e))?.starts_with(b"\xEF\xBB\xBF");
        if bom {
            buffered.consume(3);
        }
        let reading = match format {
            Format::Csv | Format::Tsv => {
                let (delimiter, quoting) = if format == Format::Csv { (b',', true) } else { (b'\t', false) };
                let window = std::sync::Arc::new(std::sync::Mutex::new(Window { line: 1, ..Window::default() }));
                let tap = Tap { inner: buffered, window: std::sync::Arc::clone(&window) };
                let reader = csv::ReaderBuilder::new()
                    .delimiter(delimiter)
                    .quoting(quoting)
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(Box::new(tap) as Box<dyn Read + Send>);
                let mut reading = Reading::Delimited { reader, table: None, record: csv::ByteRecord::new(), window };
                if let Reading::Delimited { reader, table, record, window } = &mut reading {
                    if reader.read_byte_record(record).map_err(|e| csv_error(&name, e))? {
                        let line = lock(window).record_start(record.position().map(|p| p.byte()));
                        *table = Some(Delimited::from_header(&name, line, record, delimiter, quoting, cols, false)?);
                    }
                }
                reading
            }
            Format::JsonLines => Reading::Lines { reader: Box::new(buffered), line: 0, buf: Vec::new(), pending: None },
        };
        let mut records = Records { name, cols: cols.clone(), reading, id_column: None, failed: false };
        match &records.reading {
            Reading::Delimited { table, .. } => records.id_column = table.as_ref().and_then(Delimited::id_column),
            Reading::Lines { .. } => {
                let first = records.next_line()?;
                let has_id = first.as_ref().is_some_and(|(_, has)| *has);
                records.id_column = (has_id || cols.id.is_some()).then(|| cols.id.clone().unwrap_or_else(|| "id".into()));
                if let Reading::Lines { pending, .. } = &mut records.reading {
                    *pending = first.map(|(e, _)| e);
                }
            }
        }
        Ok(records)
    }

    /// The id column: the header's (CSV/TSV), or the id key when the first record has it or one was
    /// named (JSON lines).
    pub fn id_column(&self) -> Option<&str> {
        self.id_column.as_deref()
    }

    /// The source's name in errors.
    pub fn name(&self) -> &Path {
        &self.name
    }

    fn next_line(&mut self) -> Result<Option<(Example, bool)>> {
        let Reading::Lines { reader, line, buf, .. } = &mut self.reading else { return Ok(None) };
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', buf).map_err(|e| Error::io("cannot read", &self.name, e))?;
            if n == 0 {
                return Ok(None);
            }
            *line += 1;
            let raw = buf.strip_suffix(b"\n").unwrap_or(buf);
            if let Some(found) = jsonl::example(&self.name, *line, raw, &self.cols, false)? {
                return Ok(Some(found));
            }
        }
    }

    fn next_record(&mut self) -> Result<Option<Example>> {
        match &mut self.reading {
            Reading::Delimited { reader, table, record, window } => {
                let Some(table) = table else { return Ok(None) };
                if !reader.read_byte_record(record).map_err(|e| csv_error(&self.name, e))? {
                    return Ok(None);
                }
                let line = lock(window).record_start(record.position().map(|p| p.byte()));
                table.example(&self.name, line, record, false).map(Some)
            }
            Reading::Lines { pending, .. } => match pending.take() {
                Some(e) => Ok(Some(e)),
                None => Ok(self.next_line()?.map(|(e, _)| e)),
            },
        }
    }
}

fn csv_error(name: &Path, e: csv::Error) -> Error {
    let mut at = Location::file(name);
    if let Some(pos) = e.position() {
        at = at.line(pos.line());
    }
    Error::parse(at, "malformed record", e)
}

impl Iterator for Records {
    type Item = Result<Example>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_record() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::read_dataset;

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).expect("write");
        p
    }

    fn cols() -> Columns {
        Columns { label: None, ..Columns::default() }
    }

    #[test]
    fn streams_the_examples_read_dataset_reads() {
        let dir = tempfile::tempdir().expect("tmp");
        let files = [
            ("a.csv", "\u{feff}id,text,label\nr1,\"Hello, world\",pos\nr2,\"two\nlines\",\nr3,plain,neg\n"),
            ("crlf.csv", "text,id\r\n\r\nfirst,1\r\n\r\n\r\n\"multi\r\nline\",2\r\nlast,3"),
            ("a.tsv", "text\tid\nfirst\t7\nsecond\t8\n"),
            ("a.jsonl", "{\"id\": 1, \"text\": \"one\"}\n\n{\"text\": \"two\", \"label\": \"x\"}\r\n{\"id\": \"c\", \"text\": \"three\"}"),
            ("b.jsonl", "{\"text\": \"one\"}\n{\"text\": \"two\", \"id\": 4}\n"),
        ];
        for (name, content) in files {
            let path = write(dir.path(), name, content);
            let whole = read_dataset(&path, &cols(), false).expect("read");
            let records = Records::open(&Source::File(path.clone()), None, &cols()).expect("open");
            let id = records.id_column().map(str::to_string);
            let streamed: Vec<Example> = records.collect::<Result<_>>().expect("stream");
            assert_eq!(streamed, whole.examples, "{name}");
            // JSON lines: the id key of the first record decides (b.jsonl's appears later)
            let want = if name == "b.jsonl" { None } else { whole.id_column };
            assert_eq!(id, want, "{name}");
        }
    }

    #[test]
    fn line_numbers_hold_over_a_large_file_with_blank_lines_and_quoted_newlines() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut content = String::from("id,text\r\n");
        for i in 0..20_000 {
            match i % 5 {
                0 => content.push_str(&format!("{i},\"two\r\nlines {i}\"\r\n")),
                1 => content.push_str(&format!("\r\n{i},after a blank line\r\n")),
                _ => content.push_str(&format!("{i},plain text number {i}\n")),
            }
        }
        let path = write(dir.path(), "big.csv", &content);
        let whole = read_dataset(&path, &cols(), false).expect("read");
        let streamed: Vec<Example> = Records::open(&Source::File(path), None, &cols()).expect("open").collect::<Result<_>>().expect("stream");
        assert_eq!(streamed.len(), 20_000);
        assert_eq!(streamed.last().map(|e| e.line), whole.examples.last().map(|e| e.line));
        assert_eq!(streamed, whole.examples);
    }

    #[test]
    fn errors_name_the_record_and_stop_the_stream() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = write(dir.path(), "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"\"}\n{\"text\": \"after\"}\n");
        let mut records = Records::open(&Source::File(path), None, &cols()).expect("open");
        assert!(records.next().expect("first").is_ok());
        let err = records.next().expect("second").expect_err("empty text");
        assert!(err.to_string().contains("bad.jsonl, line 2, field `text`"), "{err}");
        assert!(records.next().is_none());
        let path = write(dir.path(), "bad.csv", "text,id\nok,1\nshort\n");
        let err = Records::open(&Source::File(path), None, &cols()).expect("open").find_map(Result::err).expect("error");
        assert!(err.to_string().contains("bad.csv, line 3") && err.to_string().contains("expected 2 fields"), "{err}");
        let path = write(dir.path(), "data.txt", "text\n");
        assert!(Records::open(&Source::File(path.clone()), None, &cols()).is_err());
        assert_eq!(Records::open(&Source::File(path), Some(Format::Csv), &cols()).expect("csv").count(), 0);
    }
}
