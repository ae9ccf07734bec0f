//! Training's cross-entropy loss with optional class weights, as a differentiable tensor (the same loss
//! on probabilities, for evaluation, is `infer::cross_entropy_from_probs`), and balanced class weights.

use candle_core::Tensor;

use crate::error::Result;
use crate::model::ops;

/// Weighted mean cross-entropy (PyTorch's `CrossEntropyLoss(weight=w)`): Σ w_y·nll / Σ w_y, times `scale`.
/// `logits`: (batch, classes); `labels`: one class id per row.
pub fn cross_entropy(logits: &Tensor, labels: &[usize], class_weights: Option<&[f32]>, scale: f64) -> Result<Tensor> {
    let (b, n) = logits.dims2()?;
    let w = |y: usize| class_weights.map_or(1.0, |cw| cw[y]);
    let total: f32 = labels.iter().map(|&y| w(y)).sum();
    let mut target = vec![0f32; b * n];
    for (i, &y) in labels.iter().enumerate() {
        target[i * n + y] = w(y) / total * scale as f32;
    }
    let target = Tensor::from_vec(target, (b, n), logits.device())?;
    let logp = ops::log_softmax_last(logits)?;
    Ok(logp.mul(&target)?.sum_all()?.neg()?)
}

/// Class weights inversely proportional to frequency (scikit-learn's `balanced`: n / (k · count)).
pub fn balanced_weights(labels: &[usize], num_classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; num_classes];
    for &y in labels {
        counts[y] += 1;
    }
    let n = labels.len() as f64;
    counts.iter().map(|&c| if c == 0 { 1.0 } else { (n / (num_classes as f64 * c as f64)) as f32 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_hand_computed_values() {
        let logits = Tensor::new(&[[2.0f32, 0.0], [0.0, 1.0]], &Device::Cpu).expect("t");
        let l = cross_entropy(&logits, &[0, 0], None, 1.0).expect("ce").to_scalar::<f32>().expect("s");
        let e1 = -(2f64.exp() / (2f64.exp() + 1.0)).ln();
        let e2 = -(1.0 / (1.0 + 1f64.exp())).ln();
        assert!((l as f64 - (e1 + e2) / 2.0).abs() < 1e-6);
        let lw = cross_entropy(&logits, &[0, 1], Some(&[1.0, 3.0]), 1.0).expect("ce").to_scalar::<f32>().expect("s");
        let e3 = -(1f64.exp() / (1.0 + 1f64.exp())).ln();
        assert!((lw as f64 - (e1 + 3.0 * e3) / 4.0).abs() < 1e-6);
        let probs = crate::infer::softmax_rows(&logits).expect("probs");
        assert!((crate::infer::cross_entropy_from_probs(&probs, &[0, 1], Some(&[1.0, 3.0])) - lw as f64).abs() < 1e-6);
    }

    #[test]
    fn balanced_weights_follow_sklearn() {
        let w = balanced_weights(&[0, 0, 0, 1], 2);
        assert!((w[0] - 4.0 / 6.0).abs() < 1e-6 && (w[1] - 2.0).abs() < 1e-6);
    }
}
