//! Scored predictions with their texts and gold labels (`predictions/valid.csv`, `predictions/test.csv`),
//! the material of reports and error analysis.

use std::path::Path;

use super::Dataset;
use crate::error::{Error, Location, Result};

/// Writes `row,id,text,gold,pred,prob_<label>...`, one line per example, `gold` and `pred` as label names.
pub fn write_scored(path: &Path, data: &Dataset, gold: &[usize], labels: &[String], probs: &[Vec<f32>]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    }
    let tmp = path.with_extension("csv.tmp");
    let err = |e: csv::Error| Error::input(Location::file(path), format!("cannot write CSV: {e}"));
    {
        let mut w = csv::Writer::from_path(&tmp).map_err(err)?;
        let mut header = vec!["row".to_string(), "id".into(), "text".into(), "gold".into(), "pred".into()];
        header.extend(labels.iter().map(|l| format!("prob_{l}")));
        w.write_record(&header).map_err(err)?;
        for (i, ((ex, &g), p)) in data.examples.iter().zip(gold).zip(probs).enumerate() {
            let pred = p.iter().enumerate().fold(0, |best, (j, &v)| if v > p[best] { j } else { best });
            let mut row = vec![i.to_string(), ex.id.clone().unwrap_or_default(), ex.text.clone(), labels[g].clone(), labels[pred].clone()];
            row.extend(p.iter().map(|x| format!("{x:.6}")));
            w.write_record(&row).map_err(err)?;
        }
        w.flush().map_err(|e| Error::io("cannot write", &tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot rename into place", path, e))
}
