//! Reading labeled text files, label maps and splits: the plain-Rust records every later layer starts from.
//!
//! [`read_dataset`] turns a CSV, TSV or JSON-lines file into a [`Dataset`] of [`Example`]s that remember
//! the line they came from, so that every later error (an unknown label, a text too long) can point at it.
//! [`LabelMap`] fixes the label ↔ id mapping, and [`stratified_split`] / [`stratified_kfold`] partition
//! examples reproducibly from a seed.

mod jsonl;
mod labels;
mod reader;
mod split;
mod stream;
mod targets;

use std::path::PathBuf;

pub use labels::LabelMap;
pub use reader::{read_dataset, Format};
pub use split::{stratified_kfold, stratified_split};
pub use stream::{Records, Source};
pub use targets::{ProblemType, Scaling, Targets};

/// Which columns (CSV/TSV header names) or keys (JSON lines) hold each part of an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    /// The text to classify. Default `"text"`.
    pub text: String,
    /// The second segment of a sentence-pair task, if any. Default `None`.
    pub text_pair: Option<String>,
    /// The gold label. Default `Some("label")`; `None` reads no labels at all.
    pub label: Option<String>,
    /// An identifier carried through to predictions. `None` (the default) uses a column named `"id"`
    /// when the file has one.
    pub id: Option<String>,
    /// Multi-label data: the label cell holds several labels separated by this string (`"a|c"`; an
    /// empty cell is the empty set). JSON-lines lists (`["a", "c"]`) need no separator.
    pub label_separator: Option<String>,
    /// Multi-label data: one 0/1 column (or JSON key) per label, named by the label; replaces `label`.
    pub label_columns: Option<Vec<String>>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns { text: "text".into(), text_pair: None, label: Some("label".into()), id: None, label_separator: None, label_columns: None }
    }
}

impl Columns {
    /// Whether labels are read at all (a label column, or label columns).
    pub fn reads_labels(&self) -> bool {
        self.label.is_some() || self.label_columns.is_some()
    }
}

/// One record of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The record's identifier, when the file has an id column and the cell is not empty.
    pub id: Option<String>,
    /// The text to classify (never empty).
    pub text: String,
    /// The second segment, for sentence-pair tasks.
    pub text_pair: Option<String>,
    /// The gold label in its string form (integers as `"3"`, booleans as `"true"`), with surrounding
    /// whitespace removed; `None` when the file has no labels or the example has a label set.
    pub label: Option<String>,
    /// The gold label set of a multi-label example (a JSON list, a separated cell, or 0/1 label
    /// columns), in the order read, without repeats; may be empty.
    pub label_set: Option<Vec<String>>,
    /// The 1-based line where the record starts.
    pub line: u64,
}

/// The examples of one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The file they were read from (used in error messages).
    pub path: PathBuf,
    /// The examples, in file order.
    pub examples: Vec<Example>,
    /// The id column actually used, if any.
    pub id_column: Option<String>,
    /// The label column (or JSONL key) labels were read from, for error messages.
    pub label_column: Option<String>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// True when every example has a label (or a label set).
    pub fn has_labels(&self) -> bool {
        self.examples.iter().all(|e| e.label.is_some() || e.label_set.is_some())
    }

    /// True when some example has a label set: the data is multi-label.
    pub fn has_label_sets(&self) -> bool {
        self.examples.iter().any(|e| e.label_set.is_some())
    }

    /// The labels present, in file order (examples without one are skipped; a set gives each of its
    /// members); feed to [`LabelMap::from_labels`].
    pub fn labels(&self) -> impl Iterator<Item = &str> + '_ {
        self.examples.iter().flat_map(|e| e.label.as_deref().into_iter().chain(e.label_set.iter().flatten().map(String::as_str)))
    }

    /// A dataset holding copies of the examples at `indices` (in that order), e.g. one part of a split.
    /// Indices out of range are skipped.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            path: self.path.clone(),
            examples: indices.iter().filter_map(|&i| self.examples.get(i).cloned()).collect(),
            id_column: self.id_column.clone(),
            label_column: self.label_column.clone(),
        }
    }
}
