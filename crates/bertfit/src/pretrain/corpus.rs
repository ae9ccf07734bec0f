//! Unlabeled text for masked-LM pretraining: documents read from `.txt`, `.csv`/`.tsv` or `.jsonl`
//! files, tokenized whole and packed into sequences (grouped to full length, or one per document).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::{self, Columns};
use crate::error::{Error, Location, Result};
use crate::tokenize::{TextTokenizer, Words};

/// How a `.txt` file divides into documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentSeparator {
    /// One document per line (blank lines skipped).
    #[default]
    Line,
    /// Documents are separated by blank lines; their lines join with spaces.
    BlankLine,
}

impl DocumentSeparator {
    /// Parses `line` or `blank-line`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "line" => Ok(DocumentSeparator::Line),
            "blank-line" | "blank_line" => Ok(DocumentSeparator::BlankLine),
            other => Err(Error::config("document-separator", format!("`{other}`: expected line or blank-line"))),
        }
    }
}

/// How documents become training sequences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Packing {
    /// Concatenate every document (each with its special tokens) and cut the stream into sequences of
    /// the maximum length, as transformers' `run_mlm.py` groups texts: no padding, no text lost.
    #[default]
    GroupTexts,
    /// One sequence per document, truncated to the maximum length (`run_mlm.py --line_by_line`).
    LineByLine,
}

/// One training sequence: token ids, which of them are special (never masked), and the word each
/// token belongs to (for whole-word masking; unique across the documents of a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Whether each token is a special token.
    pub special: Vec<bool>,
    /// The word of each token.
    pub words: Vec<u32>,
}

/// Reads the documents of one file: `.txt` by `separator`, any data format by its text column (labels
/// and other columns are ignored, so a labeled training file serves as it is).
pub fn read_documents(path: &Path, text_column: &str, separator: DocumentSeparator) -> Result<Vec<String>> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let docs: Vec<String> = if matches!(ext.as_deref(), Some("txt") | Some("text")) {
        let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u64;
            Error::input(Location::file(path).line(line), "not UTF-8 text")
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        split_documents(text, separator)
    } else {
        let cols = Columns { text: text_column.to_string(), label: None, ..Columns::default() };
        data::read_dataset(path, &cols, false)?.examples.into_iter().map(|e| e.text).collect()
    };
    if docs.is_empty() {
        return Err(Error::input(Location::file(path), "no text: the file has no non-blank documents"));
    }
    Ok(docs)
}

/// The documents of a plain-text file.
fn split_documents(text: &str, separator: DocumentSeparator) -> Vec<String> {
    let lines = text.lines().map(|l| l.trim_end_matches('\r'));
    match separator {
        DocumentSeparator::Line => lines.filter(|l| !l.trim().is_empty()).map(str::to_string).collect(),
        DocumentSeparator::BlankLine => {
            let mut docs = Vec::new();
            let mut current: Vec<&str> = Vec::new();
            for line in lines.chain(std::iter::once("")) {
                if line.trim().is_empty() {
                    if !current.is_empty() {
                        docs.push(current.join(" "));
                        current.clear();
                    }
                } else {
                    current.push(line.trim());
                }
            }
            docs
        }
    }
}

/// Tokenizes documents and packs them into sequences of at most `max_len` tokens.
pub fn sequences(tokenizer: &TextTokenizer, docs: &[String], packing: Packing) -> Result<Vec<Sequence>> {
    let texts: Vec<&str> = docs.iter().map(String::as_str).collect();
    let words = tokenizer.encode_words(&texts)?;
    let specials = tokenizer.single_specials()?;
    Ok(pack(&words, &specials, tokenizer.max_len(), packing))
}

/// Packs tokenized documents (see [`Packing`]); `specials`: the tokens before and after a text.
pub fn pack(docs: &[Words], specials: &(Vec<u32>, Vec<u32>), max_len: usize, packing: Packing) -> Vec<Sequence> {
    let (before, after) = specials;
    let room = max_len.saturating_sub(before.len() + after.len()).max(1);
    let mut next_word = 0u32;
    // one document with its special tokens, its words numbered after the previous documents'
    let mut wrap = |doc: &Words, keep: usize| -> Sequence {
        let keep = keep.min(doc.ids.len());
        let mut s = Sequence { ids: Vec::new(), special: Vec::new(), words: Vec::new() };
        let first = doc.words.first().copied().unwrap_or(0);
        let mut last = 0;
        for &id in before {
            s.ids.push(id);
            s.special.push(true);
            s.words.push(u32::MAX);
        }
        for (&id, &w) in doc.ids[..keep].iter().zip(&doc.words) {
            s.ids.push(id);
            s.special.push(false);
            last = w.saturating_sub(first);
            s.words.push(next_word.wrapping_add(last));
        }
        for &id in after {
            s.ids.push(id);
            s.special.push(true);
            s.words.push(u32::MAX);
        }
        next_word = next_word.wrapping_add(last + 1);
        s
    };
    match packing {
        Packing::LineByLine => docs.iter().filter(|d| !d.ids.is_empty()).map(|d| wrap(d, room)).collect(),
        Packing::GroupTexts => {
            let mut stream = Sequence { ids: Vec::new(), special: Vec::new(), words: Vec::new() };
            for d in docs.iter().filter(|d| !d.ids.is_empty()) {
                let s = wrap(d, usize::MAX);
                stream.ids.extend(s.ids);
                stream.special.extend(s.special);
                stream.words.extend(s.words);
            }
            let n = stream.ids.len();
            (0..n)
                .step_by(max_len.max(1))
                .map(|start| {
                    let end = (start + max_len).min(n);
                    Sequence { ids: stream.ids[start..end].to_vec(), special: stream.special[start..end].to_vec(), words: stream.words[start..end].to_vec() }
                })
                .filter(|s| s.special.iter().any(|&sp| !sp))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(ids: &[u32], words: &[u32]) -> Words {
        Words { ids: ids.to_vec(), words: words.to_vec() }
    }

    #[test]
    fn blank_line_documents_join_their_lines() {
        let text = "first line\nof one\n\n\nsecond\r\n\nthird";
        assert_eq!(split_documents(text, DocumentSeparator::BlankLine), vec!["first line of one", "second", "third"]);
        assert_eq!(split_documents(text, DocumentSeparator::Line), vec!["first line", "of one", "second", "third"]);
    }

    #[test]
    fn grouping_cuts_the_stream_at_max_len_and_keeps_every_token() {
        let docs = [doc(&[10, 11, 12], &[0, 0, 1]), doc(&[20, 21], &[0, 1]), doc(&[30, 31, 32, 33], &[0, 1, 2, 3])];
        let specials = (vec![1], vec![2]);
        let seqs = pack(&docs, &specials, 4, Packing::GroupTexts);
        let all: Vec<u32> = seqs.iter().flat_map(|s| s.ids.clone()).collect();
        assert_eq!(all, vec![1, 10, 11, 12, 2, 1, 20, 21, 2, 1, 30, 31, 32, 33, 2]);
        assert!(seqs.iter().all(|s| s.ids.len() <= 4));
        let specials: Vec<bool> = seqs.iter().flat_map(|s| s.special.clone()).collect();
        assert_eq!(specials.iter().filter(|&&s| s).count(), 6);
        // words are numbered across documents: no two documents share one
        let words: Vec<u32> = seqs.iter().flat_map(|s| s.words.clone()).zip(&specials).filter(|(_, &s)| !s).map(|(w, _)| w).collect();
        assert_eq!(words, vec![0, 0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn line_by_line_truncates_each_document() {
        let docs = [doc(&[10, 11, 12, 13, 14], &[0, 1, 2, 3, 4]), doc(&[], &[]), doc(&[20], &[0])];
        let seqs = pack(&docs, &(vec![1], vec![2]), 4, Packing::LineByLine);
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[0].ids, vec![1, 10, 11, 2]);
        assert_eq!(seqs[1].ids, vec![1, 20, 2]);
        assert_eq!(seqs[0].special, vec![true, false, false, true]);
    }
}
