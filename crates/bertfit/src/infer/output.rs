//! Prediction files, written to any `impl Write` (a file, standard output, a socket): the scored CSV of a run's `predictions/*.csv`, and cross-validation's out-of-fold CSV.
//! Probabilities are written with six decimals; the label columns use [`super::argmax`].

use std::io::Write;
use std::path::Path;

use super::score::{argmax, label_set};
use crate::data::{Dataset, ProblemType, Targets};
use crate::error::{Error, Result};

/// Where CSV errors are reported: the file's path, or a name such as `<stdout>`.
fn csv_err(target: &Path) -> impl Fn(csv::Error) -> Error + '_ {
    move |e| Error::csv(target, e)
}

pub(super) fn probs_header(labels: &[String]) -> impl Iterator<Item = String> + '_ {
    labels.iter().map(|l| format!("prob_{l}"))
}

pub(super) fn probs_row(p: &[f32]) -> impl Iterator<Item = String> + '_ {
    p.iter().map(|x| format!("{x:.6}"))
}

/// How a scores row reads as a prediction, per problem type.
#[derive(Debug, Clone, Copy)]
pub enum Readout<'a> {
    /// The most probable class.
    Class,
    /// The labels at or above their thresholds (0.5 where absent), joined by `separator`.
    Set {
        /// Per-label thresholds.
        thresholds: Option<&'a [f32]>,
        /// Joins the label names in one cell.
        separator: &'a str,
    },
    /// The value itself.
    Value,
}

/// How label sets are joined in one CSV cell when the data did not name a separator.
pub const SET_SEPARATOR: &str = "|";

impl<'a> Readout<'a> {
    /// The readout of a problem type.
    pub fn of(problem: ProblemType, thresholds: Option<&'a [f32]>, separator: &'a str) -> Readout<'a> {
        match problem {
            ProblemType::SingleLabel => Readout::Class,
            ProblemType::MultiLabel => Readout::Set { thresholds, separator },
            ProblemType::Regression => Readout::Value,
        }
    }

    /// The prediction cell of a scores row.
    pub fn pred(&self, scores: &[f32], labels: &[String]) -> String {
        match self {
            Readout::Class => labels[argmax(scores)].clone(),
            Readout::Set { thresholds, separator } => join_set(&label_set(scores, *thresholds), labels, separator),
            Readout::Value => scores.first().map_or_else(String::new, |v| v.to_string()),
        }
    }

    /// The gold cell of example `i`.
    pub fn gold(&self, targets: &Targets, i: usize, labels: &[String]) -> String {
        match (self, targets) {
            (Readout::Set { separator, .. }, Targets::Sets { .. }) => {
                join_set(&targets.row(i).iter().map(|&v| v > 0.5).collect::<Vec<_>>(), labels, separator)
            }
            (_, Targets::Classes(c)) => labels[c[i]].clone(),
            (_, t) => t.row(i).first().map_or_else(String::new, |v| v.to_string()),
        }
    }

    /// Whether rows carry one probability column per label.
    pub fn has_probabilities(&self) -> bool {
        !matches!(self, Readout::Value)
    }
}

fn join_set(set: &[bool], labels: &[String], separator: &str) -> String {
    let names: Vec<&str> = set.iter().zip(labels).filter(|(on, _)| **on).map(|(_, l)| l.as_str()).collect();
    names.join(separator)
}

/// `row,id,text,gold,pred,prob_<label>...`, one line per example, `gold` and `pred` as label names
/// (label sets joined; values for regression, which has no probability columns).
pub fn write_scored<W: Write>(out: W, target: &Path, data: &Dataset, gold: &Targets, labels: &[String], probs: &[Vec<f32>], readout: &Readout<'_>) -> Result<()> {
    let err = csv_err(target);
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["row".to_string(), "id".into(), "text".into(), "gold".into(), "pred".into()];
    if readout.has_probabilities() {
        header.extend(probs_header(labels));
    }
    w.write_record(&header).map_err(&err)?;
    for (i, (ex, p)) in data.examples.iter().zip(probs).enumerate().take(gold.len()) {
        let mut row = vec![i.to_string(), ex.id.clone().unwrap_or_default(), ex.text.clone(), readout.gold(gold, i, labels), readout.pred(p, labels)];
        if readout.has_probabilities() {
            row.extend(probs_row(p));
        }
        w.write_record(&row).map_err(&err)?;
    }
    w.flush().map_err(|e| Error::io("cannot write", target, e))
}

/// Out-of-fold predictions, one row per training example in file order:
/// `row,id,fold,gold,label,prob_<label>...` (no probability columns for regression).
pub fn write_oof<W: Write>(out: W, target: &Path, data: &Dataset, gold: &Targets, labels: &[String], oof: &[(usize, Vec<f32>)], readout: &Readout<'_>) -> Result<()> {
    let err = csv_err(target);
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["row".to_string(), "id".into(), "fold".into(), "gold".into(), "label".into()];
    if readout.has_probabilities() {
        header.extend(probs_header(labels));
    }
    w.write_record(&header).map_err(&err)?;
    for (i, ((fold, p), ex)) in oof.iter().zip(&data.examples).enumerate().take(gold.len()) {
        let mut row = vec![i.to_string(), ex.id.clone().unwrap_or_default(), fold.to_string(), readout.gold(gold, i, labels), readout.pred(p, labels)];
        if readout.has_probabilities() {
            row.extend(probs_row(p));
        }
        w.write_record(&row).map_err(&err)?;
    }
    w.flush().map_err(|e| Error::io("cannot write", target, e))
}

/// Writes a file through `write` into a temporary sibling, then renames it into place (an interruption
/// never leaves half a file).
pub fn write_file_atomically(path: &Path, write: impl FnOnce(std::io::BufWriter<std::fs::File>) -> Result<()>) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    }
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    write(std::io::BufWriter::new(file))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot rename into place", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Example;

    fn data() -> Dataset {
        let ex = |id: &str, text: &str| Example { id: Some(id.into()), text: text.into(), text_pair: None, label: None, label_set: None, line: 2 };
        Dataset { path: "x.csv".into(), id_column: Some("id".into()), label_column: None, examples: vec![ex("a", "one, \"two\""), ex("b", "three")] }
    }

    #[test]
    fn scored_and_oof_rows() {
        let labels = vec!["neg".to_string(), "pos".to_string()];
        let mut out = Vec::new();
        write_scored(&mut out, Path::new("<memory>"), &data(), &Targets::Classes(vec![1, 0]), &labels, &[vec![0.25, 0.75], vec![0.6, 0.4]], &Readout::Class).expect("scored");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.lines().nth(1), Some("0,a,\"one, \"\"two\"\"\",pos,pos,0.250000,0.750000"));
        let mut out = Vec::new();
        write_oof(&mut out, Path::new("<memory>"), &data(), &Targets::Classes(vec![1, 0]), &labels, &[(2, vec![0.25, 0.75]), (1, vec![0.6, 0.4])], &Readout::Class).expect("oof");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.lines().nth(2), Some("1,b,1,neg,neg,0.600000,0.400000"));
    }

    #[test]
    fn a_failing_writer_is_an_output_error_not_the_users() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::Error::other("disk full"))
            }
        }
        let labels = vec!["neg".to_string(), "pos".to_string()];
        let err = write_scored(Broken, Path::new("out.csv"), &data(), &Targets::Classes(vec![0, 1]), &labels, &[vec![0.5, 0.5], vec![0.5, 0.5]], &Readout::Class).expect_err("broken");
        assert!(matches!(err, Error::Csv { .. } | Error::Io { .. }), "{err:?}");
        assert!(!err.is_user_error());
    }

    #[test]
    fn atomic_file_write_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub").join("p.csv");
        write_file_atomically(&path, |mut w| w.write_all(b"x\n").map_err(|e| Error::io("w", &path, e))).expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "x\n");
        assert_eq!(std::fs::read_dir(path.parent().expect("parent")).expect("ls").count(), 1);
    }
}
