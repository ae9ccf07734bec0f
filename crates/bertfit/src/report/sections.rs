//! Parts shared by the run and evaluation reports: confusion heatmaps, per-class tables, ROC and PR
//! charts, the most-confident-errors table, label-distribution and token-length charts.

use super::chart::{Bars, Chart, Heatmap, Line, Plot, RefLine, GREY, PALETTE};
use super::curves::{binary_scores, precision_recall, roc};
use super::dataset::{Histogram, LabelDistribution};
use super::html::{grid, table, Cell, Figures};
use super::matrix::Confusion;
use super::mistakes::ConfidentError;
use crate::error::Result;
use crate::metrics::{ClassScores, ConfusionMatrix, Scores};

/// Every score of a confusion matrix (for predictions that come without recorded scores).
pub(crate) fn scores_of(m: &Confusion) -> Scores {
    let n = m.labels.len();
    let mut cm = ConfusionMatrix::new(n);
    for (g, row) in m.counts.iter().enumerate().take(n) {
        for (p, &c) in row.iter().enumerate().take(n) {
            for _ in 0..c {
                cm.add(g, p);
            }
        }
    }
    Scores::from_confusion(&cm, &m.labels)
}

/// Count and row-normalised heatmaps of a confusion matrix, side by side.
pub(crate) fn confusion_figures(figs: &mut Figures, slug: &str, what: &str, m: &Confusion) -> Result<String> {
    let max = m.counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let counts = Heatmap {
        title: format!("{what}: counts"),
        labels: m.labels.clone(),
        intensity: m.counts.iter().map(|r| r.iter().map(|&c| c as f64 / max).collect()).collect(),
        cells: m.counts.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect(),
        axes: ("predicted", "gold"),
    };
    let norm = m.row_normalised();
    let shares = Heatmap {
        title: format!("{what}: share of each gold class"),
        labels: m.labels.clone(),
        cells: norm.iter().map(|r| r.iter().map(|v| format!("{v:.2}")).collect()).collect(),
        intensity: norm,
        axes: ("predicted", "gold"),
    };
    let total: u64 = m.counts.iter().flatten().sum();
    let a = figs.figure(&format!("{slug}-counts"), &Chart::Heatmap(counts), &format!("Rows: gold class; columns: predicted class; {total} examples."))?;
    let b = figs.figure(&format!("{slug}-normalised"), &Chart::Heatmap(shares), "Each row divided by its total: the diagonal is each class's recall.")?;
    Ok(grid(&[a, b]))
}

/// Precision, recall, F1 and support per class, then macro and weighted averages.
pub(crate) fn per_class_table(rows: &[ClassScores]) -> String {
    let mut body: Vec<Vec<Cell>> = rows
        .iter()
        .map(|c| vec![Cell::text(&c.label), Cell::num(Some(c.precision), 4), Cell::num(Some(c.recall), 4), Cell::num(Some(c.f1), 4), Cell::int(c.support)])
        .collect();
    let n = rows.len() as f64;
    let support: u64 = rows.iter().map(|c| c.support).sum();
    if n > 0.0 {
        let mean = |f: fn(&ClassScores) -> f64| Some(rows.iter().map(f).sum::<f64>() / n);
        let weighted = |f: fn(&ClassScores) -> f64| {
            (support > 0).then(|| rows.iter().map(|c| f(c) * c.support as f64).sum::<f64>() / support as f64)
        };
        body.push(vec![Cell::text("macro avg"), Cell::num(mean(|c| c.precision), 4), Cell::num(mean(|c| c.recall), 4), Cell::num(mean(|c| c.f1), 4), Cell::int(support)]);
        body.push(vec![
            Cell::text("weighted avg"),
            Cell::num(weighted(|c| c.precision), 4),
            Cell::num(weighted(|c| c.recall), 4),
            Cell::num(weighted(|c| c.f1), 4),
            Cell::int(support),
        ]);
    }
    table(&["class", "precision", "recall", "F1", "support"], &body)
}

/// ROC and precision-recall charts for a binary task (class 1 is positive); `None` for other tasks or
/// when a class is missing.
pub(crate) fn roc_pr_figures(figs: &mut Figures, slug: &str, what: &str, labels: &[String], gold: &[usize], probs: &[Vec<f32>]) -> Result<Option<String>> {
    if labels.len() != 2 {
        return Ok(None);
    }
    let (scores, positive) = binary_scores(gold, probs, 1);
    let (Some(r), Some(pr)) = (roc(&scores, &positive), precision_recall(&scores, &positive)) else { return Ok(None) };
    let pos = &labels[1];
    let mut a = Plot::new(&format!("{what}: ROC (AUC {:.3})", r.auc), "false positive rate", "true positive rate");
    a.lines.push(Line { markers: false, ..Line::new(format!("ROC, AUC = {:.4}", r.auc), r.points, PALETTE[0]) });
    a.refs.push(RefLine { from: (0.0, 0.0), to: (1.0, 1.0), label: Some("chance".into()), color: GREY });
    a.x_range = Some((-0.02, 1.02));
    a.y_range = Some((-0.02, 1.02));
    a.legend = super::chart::Corner::LowerRight;
    let mut b = Plot::new(&format!("{what}: precision-recall (AP {:.3})", pr.average_precision), "recall", "precision");
    let name = format!("AP = {:.4}, AUC = {:.4}", pr.average_precision, pr.auc);
    b.lines.push(Line { markers: false, ..Line::new(name, pr.points, PALETTE[1]) });
    b.refs.push(RefLine { from: (0.0, pr.base_rate), to: (1.0, pr.base_rate), label: Some(format!("positive rate {:.3}", pr.base_rate)), color: GREY });
    b.x_range = Some((-0.02, 1.02));
    b.y_range = Some((0.0, 1.04));
    b.legend = super::chart::Corner::LowerRight;
    let caption = format!("Positive class: {pos}.");
    let fa = figs.figure(&format!("{slug}-roc"), &Chart::Plot(a), &caption)?;
    let fb = figs.figure(&format!("{slug}-pr"), &Chart::Plot(b), &caption)?;
    Ok(Some(grid(&[fa, fb])))
}

/// Shortens long texts for a table (the full text is in the predictions file).
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max).collect();
        s.push_str(" …");
        s
    }
}

/// The most confident errors: row, text, true and predicted label, probability.
pub(crate) fn errors_table(errors: &[ConfidentError], labels: &[String]) -> String {
    let name = |k: usize| labels.get(k).cloned().unwrap_or_else(|| k.to_string());
    let rows: Vec<Vec<Cell>> = errors
        .iter()
        .map(|e| vec![Cell::int(e.row), Cell::text(clip(&e.text, 400)), Cell::text(name(e.gold)), Cell::text(name(e.pred)), Cell::num(Some(e.prob as f64), 3)])
        .collect();
    table(&["row", "text", "true", "predicted", "probability"], &rows).replacen("<table>", "<table class=\"errors\">", 1)
}

/// Label shares per split as grouped bars, with the counts in a table.
pub(crate) fn label_figure(figs: &mut Figures, slug: &str, dist: &LabelDistribution) -> Result<String> {
    let groups: Vec<(String, Vec<f64>)> = dist
        .splits
        .iter()
        .map(|(name, counts)| {
            let total = counts.iter().sum::<u64>().max(1) as f64;
            (format!("{name} ({})", counts.iter().sum::<u64>()), counts.iter().map(|&c| c as f64 / total).collect())
        })
        .collect();
    let bars = Bars { title: "Label distribution".into(), y_label: "share of split".into(), categories: dist.labels.clone(), groups, percent: true };
    let fig = figs.figure(slug, &Chart::Bars(bars), "Share of each label within each split (examples in brackets).")?;
    let mut headers = vec!["label"];
    headers.extend(dist.splits.iter().map(|(n, _)| n.as_str()));
    let rows: Vec<Vec<Cell>> = dist
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut row = vec![Cell::text(l)];
            row.extend(dist.splits.iter().map(|(_, c)| Cell::int(c.get(i).copied().unwrap_or(0))));
            row
        })
        .collect();
    Ok(format!("{fig}{}", table(&headers, &rows)))
}

/// The token-length histogram with the truncation cut.
pub(crate) fn length_figure(figs: &mut Figures, slug: &str, split: &str, h: &Histogram) -> Result<String> {
    let mut p = Plot::new(&format!("Token lengths ({split})"), "tokens per text (before truncation)", "texts");
    p.bars = h.bins.iter().map(|b| (b.lo as f64, b.hi as f64, b.count as f64)).collect();
    let top = h.bins.iter().map(|b| b.count).max().unwrap_or(1) as f64 * 1.12;
    let cut = h.max_len as f64 + 0.5;
    p.refs.push(RefLine { from: (cut, 0.0), to: (cut, top), label: Some(format!("max_len {}", h.max_len)), color: PALETTE[3] });
    p.y_range = Some((0.0, top.max(1.0)));
    p.x_range = h.bins.last().map(|b| (0.0, b.hi as f64));
    let mut caption = format!(
        "{:.1}% of {split} texts ({} of {}) are longer than max_len {}: truncation cuts them; --long-text chunk would split them into about {} overlapping windows (stride max_len/4). The longest has {} tokens.",
        h.truncated_share() * 100.0,
        h.truncated,
        h.total,
        h.max_len,
        h.windows_of_long_texts(),
        h.longest
    );
    if let Some(from) = h.overflow_from {
        caption.push_str(&format!(" The last bar also counts every text of {from} tokens or more."));
    }
    figs.figure(slug, &Chart::Plot(p), &caption)
}
