//! Prediction files, written to any `impl Write` (a file, standard output, a socket): the scored CSV of a run's `predictions/*.csv`, and cross-validation's out-of-fold CSV.
//! Probabilities are written with six decimals; the label columns use [`super::argmax`].

use std::io::Write;
use std::path::Path;

use super::score::argmax;
use crate::data::Dataset;
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

/// `row,id,text,gold,pred,prob_<label>...`, one line per example, `gold` and `pred` as label names.
pub fn write_scored<W: Write>(out: W, target: &Path, data: &Dataset, gold: &[usize], labels: &[String], probs: &[Vec<f32>]) -> Result<()> {
    let err = csv_err(target);
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["row".to_string(), "id".into(), "text".into(), "gold".into(), "pred".into()];
    header.extend(probs_header(labels));
    w.write_record(&header).map_err(&err)?;
    for (i, ((ex, &g), p)) in data.examples.iter().zip(gold).zip(probs).enumerate() {
        let mut row = vec![i.to_string(), ex.id.clone().unwrap_or_default(), ex.text.clone(), labels[g].clone(), labels[argmax(p)].clone()];
        row.extend(probs_row(p));
        w.write_record(&row).map_err(&err)?;
    }
    w.flush().map_err(|e| Error::io("cannot write", target, e))
}

/// Out-of-fold predictions, one row per training example in file order:
/// `row,id,fold,gold,label,prob_<label>...`.
pub fn write_oof<W: Write>(out: W, target: &Path, data: &Dataset, gold: &[usize], labels: &[String], oof: &[(usize, Vec<f32>)]) -> Result<()> {
    let err = csv_err(target);
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["row".to_string(), "id".into(), "fold".into(), "gold".into(), "label".into()];
    header.extend(probs_header(labels));
    w.write_record(&header).map_err(&err)?;
    for (i, ((fold, p), ex)) in oof.iter().zip(&data.examples).enumerate() {
        let mut row = vec![i.to_string(), ex.id.clone().unwrap_or_default(), fold.to_string(), labels[gold[i]].clone(), labels[argmax(p)].clone()];
        row.extend(probs_row(p));
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
        let ex = |id: &str, text: &str| Example { id: Some(id.into()), text: text.into(), text_pair: None, label: None, line: 2 };
        Dataset { path: "x.csv".into(), id_column: Some("id".into()), label_column: None, examples: vec![ex("a", "one, \"two\""), ex("b", "three")] }
    }

    #[test]
    fn scored_and_oof_rows() {
        let labels = vec!["neg".to_string(), "pos".to_string()];
        let mut out = Vec::new();
        write_scored(&mut out, Path::new("<memory>"), &data(), &[1, 0], &labels, &[vec![0.25, 0.75], vec![0.6, 0.4]]).expect("scored");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.lines().nth(1), Some("0,a,\"one, \"\"two\"\"\",pos,pos,0.250000,0.750000"));
        let mut out = Vec::new();
        write_oof(&mut out, Path::new("<memory>"), &data(), &[1, 0], &labels, &[(2, vec![0.25, 0.75]), (1, vec![0.6, 0.4])]).expect("oof");
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
        let err = write_scored(Broken, Path::new("out.csv"), &data(), &[0, 1], &labels, &[vec![0.5, 0.5], vec![0.5, 0.5]]).expect_err("broken");
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
