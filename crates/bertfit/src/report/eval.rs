//! The report of one evaluation (`bertfit eval --report FILE`): scores, confusion matrices, per-class
//! table, gold against predicted label counts, ROC/PR curves for binary tasks, most confident errors.

use super::curves::{binary_scores, roc};
use super::dataset::LabelDistribution;
use super::html::{key_values, note, subheading, Cell, Figures, Section};
use super::matrix::Confusion;
use super::mistakes::most_confident_errors;
use super::sections::{confusion_figures, errors_table, label_figure, per_class_table, roc_pr_figures, scores_of};
use crate::error::Result;

/// Every section of an evaluation report; the inputs have been checked to fit together.
pub(crate) fn sections(labels: &[String], gold: &[usize], probs: &[Vec<f32>], texts: &[String], figs: &mut Figures) -> Result<Vec<Section>> {
    let m = Confusion::from_probs(labels, gold, probs)?;
    let scores = scores_of(&m);
    let mut kv = vec![
        ("examples".to_string(), Cell::int(gold.len())),
        ("classes".to_string(), Cell::text(format!("{}: {}", labels.len(), labels.join(", ")))),
        ("accuracy".to_string(), Cell::num(Some(scores.accuracy), 4)),
        ("F1 macro".to_string(), Cell::num(Some(scores.f1_macro), 4)),
        ("F1 weighted".to_string(), Cell::num(Some(scores.f1_weighted), 4)),
        ("precision macro".to_string(), Cell::num(Some(scores.precision_macro), 4)),
        ("recall macro".to_string(), Cell::num(Some(scores.recall_macro), 4)),
        ("MCC".to_string(), Cell::num(Some(scores.mcc), 4)),
    ];
    if labels.len() == 2 {
        let (s, p) = binary_scores(gold, probs, 1);
        kv.push(("ROC AUC".to_string(), Cell::num(roc(&s, &p).map(|r| r.auc), 4)));
    }
    let mut out = vec![Section::new("summary", "Summary", key_values(&kv))];

    let body = if gold.is_empty() { note("No examples.") } else { confusion_figures(figs, "confusion", "Evaluation", &m)? };
    out.push(Section::new("confusion", "Confusion matrices", body));
    out.push(Section::new("per-class", "Per-class scores", per_class_table(&scores.per_class)));

    let dist = LabelDistribution { labels: labels.to_vec(), splits: vec![("gold".into(), m.gold_totals()), ("predicted".into(), m.pred_totals())] };
    let body = if dist.is_empty() { note("No examples.") } else { label_figure(figs, "labels", &dist)? };
    out.push(Section::new("labels", "Gold and predicted labels", body));

    let title = "ROC and precision-recall (binary)";
    let body = match roc_pr_figures(figs, "eval", "Evaluation", labels, gold, probs)? {
        Some(html) => html,
        None if labels.len() != 2 => note(&format!("Not a binary task ({} classes): no ROC or precision-recall curves.", labels.len())),
        None => note("Only one class is present among the gold labels: no curves."),
    };
    out.push(Section::new("roc-pr", title, body));

    let errors = most_confident_errors(gold, probs, texts, 10);
    let mut body = subheading(&format!("{} most confident errors", errors.len()));
    body.push_str(&if errors.is_empty() { note("No errors.") } else { errors_table(&errors, labels) });
    out.push(Section::new("errors", "Most confident errors", body));
    Ok(out)
}
