//! What a classifier's outputs mean for its problem type: the activation that turns a logits row into
//! scores (softmax probabilities, per-label sigmoid probabilities, or a value in the targets' units), and
//! the training loss with its gradient on host logits, which both training paths share for the
//! multi-label and regression losses.

use crate::data::{ProblemType, Scaling, Targets};
use crate::engine::ops::softmax_row;

/// The loss of a regression run (classification losses follow from the problem type).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionLoss {
    /// Mean squared error (transformers' regression loss).
    #[default]
    Mse,
    /// Huber loss with δ = 1 in standardised units (PyTorch's `HuberLoss()`): squared near the target,
    /// linear beyond, less pulled by outliers.
    Huber,
}

impl std::str::FromStr for RegressionLoss {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mse" => Ok(RegressionLoss::Mse),
            "huber" => Ok(RegressionLoss::Huber),
            other => Err(crate::error::Error::config("loss", format!("unknown loss `{other}`; accepted: mse, huber"))),
        }
    }
}

/// Huber's δ, in standardised target units (PyTorch's `HuberLoss()` default).
const HUBER_DELTA: f64 = 1.0;

/// The loss and activation of a problem type.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// The problem type.
    pub problem: ProblemType,
    /// Single-label: a weight per class (`CrossEntropyLoss(weight)`); multi-label: a positive weight per
    /// label (`BCEWithLogitsLoss(pos_weight)`); unused for regression.
    pub weights: Option<Vec<f32>>,
    /// Regression loss.
    pub loss: RegressionLoss,
    /// Regression: the training targets' scaling. The loss is measured in its standardised units.
    pub scaling: Scaling,
    /// Regression: the weights have `scaling` folded in (a saved model folder), so the outputs are
    /// already in the targets' units; otherwise (training, checkpoints) they are standardised.
    pub folded: bool,
}

impl Objective {
    /// Softmax cross-entropy with optional class weights.
    pub fn single(weights: Option<Vec<f32>>) -> Objective {
        Objective { problem: ProblemType::SingleLabel, weights, loss: RegressionLoss::Mse, scaling: Scaling::IDENTITY, folded: false }
    }

    /// The objective of a saved model of `problem`, for inference: no weights, no scaling.
    pub fn inference(problem: ProblemType) -> Objective {
        Objective { problem, ..Objective::single(None) }
    }

    /// The objective a loaded model predicts with: its problem type and the target scaling, standardising
    /// its weights (a checkpoint) or folded into them (a saved model folder, as its settings record).
    pub fn of_model(model: &crate::model::Classifier) -> Objective {
        let saved = model.saved_meta.as_ref().filter(|m| m.scaling_folded).and_then(|m| m.target_scaling);
        match (model.target_scaling, saved) {
            (Some(scaling), _) => Objective { scaling, ..Objective::inference(model.problem) },
            (None, Some(scaling)) => Objective { scaling, folded: true, ..Objective::inference(model.problem) },
            (None, None) => Objective::inference(model.problem),
        }
    }

    /// The same objective for the model saved from this run (the scaling folded into its weights).
    pub fn folded(self) -> Objective {
        Objective { folded: true, ..self }
    }

    /// The scores of one logits row: class probabilities, label probabilities, or `[value]`.
    pub fn activate(&self, row: &[f32]) -> Vec<f32> {
        match self.problem {
            ProblemType::SingleLabel => softmax_row(row),
            ProblemType::MultiLabel => row.iter().map(|&x| sigmoid(x as f64) as f32).collect(),
            ProblemType::Regression if self.folded => row.to_vec(),
            ProblemType::Regression => row.iter().map(|&x| self.scaling.inverse(x as f64) as f32).collect(),
        }
    }

    /// The loss of a batch of logits (`rows × width`, row-major), times `scale`, and its gradient in
    /// `dlogits`. `classes`: the class id per row (single-label); `dense`: the 0/1 indicators or the raw
    /// values per row (multi-label, regression). Sums run in f64 in row order.
    pub fn loss_grad(&self, logits: &[f32], width: usize, classes: &[usize], dense: &[f32], scale: f64, dlogits: &mut [f32]) -> f64 {
        match self.problem {
            ProblemType::SingleLabel => {
                let mut probs = vec![0f32; logits.len()];
                crate::engine::ops::softmax_ce(logits, width, classes, self.weights.as_deref(), scale, &mut probs, dlogits)
            }
            ProblemType::MultiLabel => {
                let n = logits.len().max(1) as f64;
                let mut loss = 0.0;
                for (i, (&x, &y)) in logits.iter().zip(dense).enumerate() {
                    let p = self.weights.as_ref().map_or(1.0, |w| w[i % width] as f64);
                    let (x, y) = (x as f64, y as f64);
                    // −[p·y·log σ(x) + (1 − y)·log(1 − σ(x))], with log σ(x) = −softplus(−x)
                    loss += p * y * softplus(-x) + (1.0 - y) * softplus(x);
                    dlogits[i] = ((sigmoid(x) * (p * y + 1.0 - y) - p * y) * scale / n) as f32;
                }
                loss * scale / n
            }
            ProblemType::Regression => {
                let n = logits.len().max(1) as f64;
                let mut loss = 0.0;
                // outputs in the targets' units (folded weights) move the standardised difference 1/std per unit
                let dd_dx = if self.folded { 1.0 / self.scaling.std } else { 1.0 };
                for (i, (&x, &y)) in logits.iter().zip(dense).enumerate() {
                    let d = if self.folded { (x as f64 - y as f64) / self.scaling.std } else { x as f64 - self.scaling.forward(y as f64) };
                    let (l, g) = self.pointwise(d);
                    loss += l;
                    dlogits[i] = (g * dd_dx * scale / n) as f32;
                }
                loss * scale / n
            }
        }
    }

    /// The regression loss of one standardised difference and its derivative.
    fn pointwise(&self, d: f64) -> (f64, f64) {
        match self.loss {
            RegressionLoss::Mse => (d * d, 2.0 * d),
            RegressionLoss::Huber if d.abs() <= HUBER_DELTA => (0.5 * d * d, d),
            RegressionLoss::Huber => (HUBER_DELTA * (d.abs() - 0.5 * HUBER_DELTA), HUBER_DELTA * d.signum()),
        }
    }

    /// The mean loss of scores (as [`Objective::activate`] gives them) against `targets`: the same
    /// loss training minimises (cross-entropy, binary cross-entropy with the positive weights, or the
    /// regression loss in standardised units), for evaluation.
    pub fn eval_loss(&self, scores: &[Vec<f32>], targets: &Targets) -> f64 {
        match targets {
            Targets::Classes(gold) => crate::infer::cross_entropy_from_probs(scores, gold, self.weights.as_deref()),
            Targets::Sets { width, .. } => {
                let (mut sum, mut n) = (0.0, 0usize);
                for (i, row) in scores.iter().enumerate() {
                    for (k, (&q, &y)) in row.iter().zip(targets.row(i)).enumerate() {
                        let p = self.weights.as_ref().map_or(1.0, |w| w[k % width] as f64);
                        let q = (q as f64).clamp(1e-12, 1.0 - 1e-12);
                        sum += -(p * y as f64 * q.ln() + (1.0 - y as f64) * (1.0 - q).ln());
                        n += 1;
                    }
                }
                if n == 0 { 0.0 } else { sum / n as f64 }
            }
            Targets::Values(gold) => {
                let terms: Vec<f64> = scores
                    .iter()
                    .zip(gold)
                    .map(|(row, &y)| self.pointwise((row.first().copied().unwrap_or(0.0) as f64 - y as f64) / self.scaling.std).0)
                    .collect();
                if terms.is_empty() { 0.0 } else { terms.iter().sum::<f64>() / terms.len() as f64 }
            }
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + eˣ)`, without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Positive weights for multi-label binary cross-entropy, per label: negatives / positives in the
/// training targets (PyTorch's advice for `pos_weight`), 1 for a label that never or always occurs.
pub fn balanced_pos_weights(targets: &Targets) -> Vec<f32> {
    let Targets::Sets { width, hot } = targets else { return Vec::new() };
    let rows = hot.len() / (*width).max(1);
    (0..*width)
        .map(|k| {
            let pos = (0..rows).filter(|&r| hot[r * width + k] > 0.5).count();
            if pos == 0 || pos == rows { 1.0 } else { ((rows - pos) as f64 / pos as f64) as f32 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic gradient against central differences of the loss.
    fn check_gradient(obj: &Objective, logits: &[f32], width: usize, dense: &[f32]) {
        let mut grad = vec![0f32; logits.len()];
        let loss = obj.loss_grad(logits, width, &[], dense, 0.5, &mut grad);
        assert!(loss.is_finite());
        for i in 0..logits.len() {
            let h = 1e-3f32;
            let (mut up, mut down) = (logits.to_vec(), logits.to_vec());
            up[i] += h;
            down[i] -= h;
            let mut scratch = vec![0f32; logits.len()];
            let numeric = (obj.loss_grad(&up, width, &[], dense, 0.5, &mut scratch) - obj.loss_grad(&down, width, &[], dense, 0.5, &mut scratch)) / (2.0 * h as f64);
            assert!((numeric - grad[i] as f64).abs() < 1e-4, "element {i}: numeric {numeric} vs {}", grad[i]);
        }
    }

    #[test]
    fn binary_cross_entropy_matches_pytorch_and_its_gradient() {
        // torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2., 1., .5]))(x, y), x, y as below
        let logits = [0.3f32, -1.2, 2.0, -0.4, 0.0, 5.0];
        let targets = [1f32, 0., 1., 0., 1., 0.];
        let obj = Objective { problem: ProblemType::MultiLabel, weights: Some(vec![2.0, 1.0, 0.5]), ..Objective::single(None) };
        let mut grad = [0f32; 6];
        let loss = obj.loss_grad(&logits, 3, &[], &targets, 1.0, &mut grad);
        let expected: f64 = logits
            .iter()
            .zip(&targets)
            .enumerate()
            .map(|(i, (&x, &y))| {
                let (x, y, p) = (x as f64, y as f64, [2.0, 1.0, 0.5][i % 3]);
                let s = 1.0 / (1.0 + (-x).exp());
                -(p * y * s.ln() + (1.0 - y) * (1.0 - s).ln())
            })
            .sum::<f64>()
            / 6.0;
        assert!((loss - expected).abs() < 1e-12, "{loss} vs {expected}");
        check_gradient(&obj, &logits, 3, &targets);
        let unweighted = Objective { weights: None, ..obj.clone() };
        check_gradient(&unweighted, &[40.0, -40.0, 0.1, -0.1], 2, &[0., 1., 1., 0.]);
        let probs: Vec<Vec<f32>> = logits.chunks(3).map(|r| obj.activate(r)).collect();
        let eval = obj.eval_loss(&probs, &Targets::Sets { width: 3, hot: targets.to_vec() });
        assert!((eval - expected).abs() < 1e-6, "{eval} vs {expected}");
    }

    #[test]
    fn regression_losses_are_standardised_and_their_gradients_hold() {
        let scaling = Scaling { mean: 10.0, std: 2.0 };
        let mse = Objective { problem: ProblemType::Regression, scaling, ..Objective::single(None) };
        let logits = [0.5f32, -1.0, 3.0];
        let raw = [11.0f32, 6.0, 10.0];
        let mut grad = [0f32; 3];
        // standardised targets 0.5, −2, 0: differences 0, 1, 3
        let loss = mse.loss_grad(&logits, 1, &[], &raw, 1.0, &mut grad);
        assert!((loss - 10.0 / 3.0).abs() < 1e-12);
        check_gradient(&mse, &logits, 1, &raw);
        let huber = Objective { loss: RegressionLoss::Huber, ..mse.clone() };
        let loss = huber.loss_grad(&logits, 1, &[], &raw, 1.0, &mut grad);
        assert!((loss - (0.0 + 0.5 + 2.5) / 3.0).abs() < 1e-12);
        check_gradient(&huber, &[0.5, -1.0, 3.2], 1, &raw);
        assert_eq!(mse.activate(&[1.5]), [13.0]);
        // folded weights output target units: the same loss and the gradient per target unit
        let folded = mse.clone().folded();
        let raw_logits: Vec<f32> = logits.iter().map(|&x| scaling.inverse(x as f64) as f32).collect();
        let mut folded_grad = [0f32; 3];
        assert!((folded.loss_grad(&raw_logits, 1, &[], &raw, 1.0, &mut folded_grad) - 10.0 / 3.0).abs() < 1e-6);
        check_gradient(&folded, &raw_logits, 1, &raw);
        assert_eq!(folded.activate(&[13.0]), [13.0]);
        let scores: Vec<Vec<f32>> = logits.iter().map(|&x| mse.activate(&[x])).collect();
        assert!((mse.eval_loss(&scores, &Targets::Values(raw.to_vec())) - 10.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn balanced_positive_weights_are_negatives_over_positives() {
        let t = Targets::Sets { width: 3, hot: vec![1., 0., 1., 0., 0., 1., 0., 1., 1., 0., 0., 1.] };
        assert_eq!(balanced_pos_weights(&t), [3.0, 3.0, 1.0]);
    }
}
