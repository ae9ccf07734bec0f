//! The library's one error type: every failure keeps its cause and names the file, line or field at fault.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a user-supplied file a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number, when known.
    pub line: Option<u64>,
    /// The column / JSON key / config field, when known.
    pub field: Option<String>,
}

impl Location {
    /// A location that names only a file.
    pub fn file(path: impl AsRef<Path>) -> Self {
        Location { path: path.as_ref().to_path_buf(), line: None, field: None }
    }
    /// Adds a line number.
    pub fn line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }
    /// Adds a field name.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        Ok(())
    }
}

/// Every error the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {op}", path.display())]
    Io {
        /// What was being done ("cannot read", "cannot create").
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A user-supplied data, config or model file has bad content.
    #[error("{at}: {msg}")]
    Input {
        /// Where.
        at: Location,
        /// What is wrong.
        msg: String,
    },
    /// A user-supplied data or config file could not be parsed.
    #[error("{at}: {msg}")]
    Parse {
        /// Where.
        at: Location,
        /// What was expected.
        msg: String,
        /// The parser's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An option has an invalid value.
    #[error("invalid option `{option}`: {msg}")]
    Config {
        /// The option (flag or config key).
        option: String,
        /// What is wrong.
        msg: String,
    },
    /// The tokenizer could not be loaded or failed on input.
    #[error("tokenizer {}: {msg}", path.display())]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What was being done.
        msg: String,
        /// The tokenizers crate's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Downloading a model from the Hugging Face Hub failed.
    #[error("cannot fetch `{file}` of hub model `{repo}`")]
    Hub {
        /// The repository id.
        repo: String,
        /// The file.
        file: String,
        /// The hub client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A tensor operation failed (a bug or an exhausted resource, not bad input).
    #[error("tensor operation failed")]
    Tensor(#[from] candle_core::Error),
    /// Writing a CSV file failed (an output problem, not the user's input).
    #[error("{}: cannot write CSV", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The CSV writer's error.
        #[source]
        source: csv::Error,
    },
    /// Serialising bertfit's own data (a JSON record, a config) failed: a bug, not the user's input.
    #[error("cannot serialise {what}")]
    Serialize {
        /// What was being serialised.
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// Training produced a non-finite loss.
    #[error("training diverged: the loss is {loss} at step {step} (try a lower --lr, gradient clipping with --max-grad-norm, or f32 precision)")]
    Diverged {
        /// Optimizer step at which it happened.
        step: usize,
        /// The loss value (NaN or infinite).
        loss: f64,
    },
    /// A compute backend (the GPU's driver, libraries or kernels) failed.
    #[error("compute backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Training was stopped on request; a checkpoint has been written.
    #[error("interrupted")]
    Interrupted,
}

/// An error with its causes, `: `-separated ("a: b: c"), for reports that keep errors as text.
pub fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.as_ref().to_path_buf(), source }
    }
    /// Builds an [`Error::Input`].
    pub fn input(at: Location, msg: impl Into<String>) -> Self {
        Error::Input { at, msg: msg.into() }
    }
    /// Builds an [`Error::Parse`].
    pub fn parse(
        at: Location,
        msg: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Parse { at, msg: msg.into(), source: source.into() }
    }
    /// Builds an [`Error::Serialize`].
    pub fn serialize(what: &'static str, source: serde_json::Error) -> Self {
        Error::Serialize { what, source }
    }
    /// Builds an [`Error::Csv`].
    pub fn csv(path: impl AsRef<Path>, source: csv::Error) -> Self {
        Error::Csv { path: path.as_ref().to_path_buf(), source }
    }
    /// Builds an [`Error::Config`].
    pub fn config(option: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config { option: option.into(), msg: msg.into() }
    }
    /// True when the error is the user's input (exit code 2), false for other failures (exit code 1).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Input { .. } | Error::Parse { .. } | Error::Config { .. } | Error::Tokenizer { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidData
            ),
            Error::Hub { .. }
            | Error::Tensor(_)
            | Error::Csv { .. }
            | Error::Serialize { .. }
            | Error::Diverged { .. }
            | Error::Backend(_)
            | Error::Interrupted => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_names_file_line_and_field() {
        let at = Location::file("data/train.csv").line(12).field("label");
        let e = Error::input(at, "unknown label `spam`");
        assert_eq!(e.to_string(), "data/train.csv, line 12, field `label`: unknown label `spam`");
        assert!(e.is_user_error());
    }
}
