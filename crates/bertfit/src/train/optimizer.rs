//! AdamW with decoupled weight decay, gradient accumulation and global-norm clipping, whose state
//! (moments, step count) we own as plain vectors so it can be saved and restored exactly.
//!
//! The update runs as one fused in-place pass per tensor (a candle `InplaceOp1`) instead of a dozen
//! allocating tensor ops.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Layout, Var};

use crate::error::Result;

/// AdamW hyperparameters (shared with the engine, which updates with the same arithmetic).
pub use crate::engine::ops::AdamWConfig;
use crate::engine::ops::{sum_sq, AdamStep};

/// Whether weight decay applies to a parameter (the rule lives with the parameter names).
pub use crate::model::params::decays;

struct Slot {
    name: String,
    var: Var,
    decay: bool,
    grad: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// The optimizer and its state.
pub struct AdamW {
    slots: Vec<Slot>,
    cfg: AdamWConfig,
    /// Updates applied so far.
    pub step: usize,
    /// Micro-batches accumulated since the last update.
    pub accumulated: usize,
}

pub(crate) use crate::model::params::with_f32;

struct Update<'a> {
    grad: &'a [f32],
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
    step: AdamStep,
}

impl candle_core::InplaceOp1 for Update<'_> {
    fn name(&self) -> &'static str {
        "adamw-update"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("adamw: parameters must be f32") };
        let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("adamw: parameter not contiguous") };
        let p = &mut data[start..end];
        let (mut ms, mut vs) = (self.m.borrow_mut(), self.v.borrow_mut());
        if p.len() != self.grad.len() || ms.len() != p.len() || vs.len() != p.len() {
            candle_core::bail!("adamw: parameter length {}, gradient {}, moments {} and {}", p.len(), self.grad.len(), ms.len(), vs.len());
        }
        // the element update the engine's flat AdamW uses too
        crate::engine::ops::adamw(p, self.grad, &mut ms, &mut vs, &self.step);
        Ok(())
    }
}

impl AdamW {
    /// An optimizer over `params` (name, variable), with zeroed moments.
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Self {
        let slots = params
            .into_iter()
            .map(|(name, var)| {
                let n = var.elem_count();
                Slot { decay: decays(&name), name, var, grad: vec![0.0; n], m: vec![0.0; n], v: vec![0.0; n] }
            })
            .collect();
        AdamW { slots, cfg, step: 0, accumulated: 0 }
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.slots.iter().map(|s| s.grad.len()).sum()
    }

    /// Adds one backward pass's gradients to the accumulators. Returns the names of trainable tensors
    /// that received no gradient (a wiring bug if non-empty).
    pub fn accumulate(&mut self, grads: &GradStore) -> Result<Vec<String>> {
        let mut missing = Vec::new();
        for slot in &mut self.slots {
            match grads.get(slot.var.as_tensor()) {
                Some(g) => with_f32(g, |g| {
                    for (a, b) in slot.grad.iter_mut().zip(g) {
                        *a += *b;
                    }
                })?,
                None => missing.push(slot.name.clone()),
            }
        }
        self.accumulated += 1;
        Ok(missing)
    }

    /// L2 norm of the accumulated gradients.
    pub fn grad_norm(&self) -> f64 {
        // per tensor in a fixed order (engine::ops::sum_sq), then summed in slot order
        self.slots.iter().map(|s| sum_sq(&s.grad)).sum::<f64>().sqrt()
    }

    /// Clips the accumulated gradients to `max_norm` (global L2 norm), applies one update at `lr`, and
    /// zeroes the accumulators. Returns the gradient norm before clipping.
    pub fn apply(&mut self, lr: f64, max_norm: Option<f64>) -> Result<f64> {
        self.apply_to(lr, max_norm, |_| true)
    }

    /// [`AdamW::apply`] to the parameters whose name `train` accepts: the others keep their weights and
    /// moments (no decay either), their accumulated gradients are dropped, and the norm that clipping
    /// uses is over the updated parameters only.
    pub fn apply_to(&mut self, lr: f64, max_norm: Option<f64>, train: impl Fn(&str) -> bool) -> Result<f64> {
        let norm = self.slots.iter().filter(|s| train(&s.name)).map(|s| sum_sq(&s.grad)).sum::<f64>().sqrt();
        self.step += 1;
        let step = AdamStep::new(&self.cfg, self.step, lr, norm, max_norm);
        for slot in &mut self.slots {
            if train(&slot.name) {
                let update = Update {
                    grad: &slot.grad,
                    m: RefCell::new(slot.m.as_mut_slice()),
                    v: RefCell::new(slot.v.as_mut_slice()),
                    step: AdamStep { decay: if slot.decay { step.decay } else { 0.0 }, ..step },
                };
                slot.var.as_tensor().inplace_op1(&update)?;
            }
            slot.grad.fill(0.0);
        }
        self.accumulated = 0;
        Ok(norm)
    }

    /// The state as named f32 vectors: `NAME.exp_avg`, `NAME.exp_avg_sq`, `NAME.grad_acc`.
    pub fn state_vectors(&self) -> Vec<(String, &[f32])> {
        let mut out = Vec::with_capacity(self.slots.len() * 3);
        for s in &self.slots {
            out.push((format!("{}.exp_avg", s.name), s.m.as_slice()));
            out.push((format!("{}.exp_avg_sq", s.name), s.v.as_slice()));
            out.push((format!("{}.grad_acc", s.name), s.grad.as_slice()));
        }
        out
    }

    /// Restores moments and accumulators saved by [`AdamW::state_vectors`]. Returns the names that were
    /// absent or of the wrong size.
    pub fn restore(&mut self, mut saved: HashMap<String, Vec<f32>>) -> Vec<String> {
        let mut bad = Vec::new();
        for s in &mut self.slots {
            for (suffix, target) in [("exp_avg", &mut s.m), ("exp_avg_sq", &mut s.v), ("grad_acc", &mut s.grad)] {
                let key = format!("{}.{suffix}", s.name);
                match saved.remove(&key) {
                    Some(v) if v.len() == target.len() => *target = v,
                    _ => bad.push(key),
                }
            }
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// One AdamW step computed by hand in f64 (the PyTorch formulas).
    #[test]
    fn matches_reference_formulas() {
        let w0 = [0.5f32, -1.0, 2.0];
        let var = Var::from_tensor(&Tensor::new(&w0, &Device::Cpu).expect("t")).expect("v");
        let cfg = AdamWConfig { weight_decay: 0.1, ..Default::default() };
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], cfg);
        let mut expected: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
        let (mut m, mut v) = (vec![0.0f64; 3], vec![0.0f64; 3]);
        for step in 1..=3 {
            let loss = var.as_tensor().sqr().expect("sqr").sum_all().expect("sum");
            let grads = loss.backward().expect("bwd");
            assert!(opt.accumulate(&grads).expect("acc").is_empty());
            let lr = 0.01;
            opt.apply(lr, None).expect("apply");
            for i in 0..3 {
                let g = 2.0 * expected[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                expected[i] -= lr * 0.1 * expected[i];
                let mh = m[i] / (1.0 - 0.9f64.powi(step));
                let vh = v[i] / (1.0 - 0.999f64.powi(step));
                expected[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got: Vec<f32> = var.as_tensor().to_vec1().expect("vec");
        for (g, e) in got.iter().zip(&expected) {
            assert!((*g as f64 - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let var = Var::from_tensor(&Tensor::new(&[3f32, 4.0], &Device::Cpu).expect("t")).expect("v");
        let mut opt = AdamW::new(vec![("w.bias".into(), var.clone())], AdamWConfig::default());
        let grads = var.as_tensor().sum_all().expect("sum").backward().expect("bwd");
        opt.accumulate(&grads).expect("acc");
        opt.accumulate(&grads).expect("acc");
        assert!((opt.grad_norm() - 8f64.sqrt()).abs() < 1e-9);
        let norm = opt.apply(0.1, Some(1.0)).expect("apply");
        assert!((norm - 8f64.sqrt()).abs() < 1e-9);
        assert_eq!(opt.grad_norm(), 0.0);
        assert_eq!(opt.step, 1);
    }

    #[test]
    fn no_decay_for_bias_and_layernorm() {
        assert!(decays("encoder.layer.0.attention.self.query.weight"));
        assert!(!decays("encoder.layer.0.attention.self.query.bias"));
        assert!(!decays("embeddings.LayerNorm.weight"));
    }

    /// The engine's flat AdamW (one pass over the layout's buffers) gives the graph optimizer's bits.
    #[test]
    fn the_engines_flat_adamw_equals_the_graph_optimizer_bit_for_bit() {
        use crate::engine::layout::Layout;
        use crate::engine::ops::{adamw_flat, AdamStep};
        use crate::model::random::{tiny_config, write_random_model};
        use crate::model::{Classifier, Freeze, LoadOptions, ModelFolder};
        let dir = tempfile::tempdir().expect("dir");
        let cfg = tiny_config(12);
        let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d", "e", "f", "g", "h"].iter().map(|s| s.to_string()).collect();
        write_random_model(dir.path(), &cfg, &vocab, 5).expect("model");
        let freeze = Freeze { layers: 1, ..Freeze::default() };
        let opts = LoadOptions { labels: Some(vec!["x".into(), "y".into()]), freeze, ..Default::default() };
        let model = Classifier::load(&ModelFolder::open(dir.path()).expect("folder"), opts).expect("classifier");
        let layout = Layout::new(&model.config, &model.head_spec(), freeze);
        let wd = 0.01;
        let mut opt = AdamW::new(model.trainable(), AdamWConfig { weight_decay: wd, ..Default::default() });
        let vars: std::collections::BTreeMap<String, Var> = model.trainable().into_iter().collect();
        let read = |v: &Var| v.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32");
        let mut params = vec![0f32; layout.total];
        for seg in layout.segments.iter().filter(|s| s.trainable) {
            params[seg.offset..seg.offset + seg.len].copy_from_slice(&read(&vars[&seg.name]));
        }
        let (mut m, mut v) = (vec![0f32; layout.total], vec![0f32; layout.total]);
        let encoded: Vec<crate::tokenize::Encoded> = (0..4)
            .map(|i| crate::tokenize::Encoded { ids: (0..3 + i).map(|t| 4 + ((t + i) % 8) as u32).collect(), type_ids: vec![0; 3 + i], truncated: false })
            .collect();
        let train = crate::train::TrainConfig { max_grad_norm: 0.0, weight_decay: wd, ..Default::default() };
        for step in 1..=3 {
            let b = crate::batch::collate(&encoded, &[0, 1, 2, 3], Some(&[0, 1, 1, 0]), 0);
            crate::train::trainer::step(&model, &mut opt, &b, step, &train, &crate::objective::Objective::single(None), None).expect("backward");
            let state: HashMap<String, Vec<f32>> = opt.state_vectors().into_iter().map(|(n, s)| (n, s.to_vec())).collect();
            let mut grads = vec![0f32; layout.total];
            for seg in layout.segments.iter().filter(|s| s.trainable) {
                grads[seg.offset..seg.offset + seg.len].copy_from_slice(&state[&format!("{}.grad_acc", seg.name)]);
            }
            let lr = 1e-3;
            opt.apply(lr, None).expect("apply");
            let c = AdamWConfig::default();
            let t = step as i32;
            let hyper = AdamStep {
                lr: lr as f32,
                decay: wd as f32,
                beta1: c.beta1 as f32,
                beta2: c.beta2 as f32,
                eps: c.eps as f32,
                bias1: (1.0 - c.beta1.powi(t)) as f32,
                bias2_sqrt: (1.0 - c.beta2.powi(t)).sqrt() as f32,
                grad_scale: 1.0,
            };
            adamw_flat(&layout, &mut params, &grads, &mut m, &mut v, &hyper);
            let state: HashMap<String, Vec<f32>> = opt.state_vectors().into_iter().map(|(n, s)| (n, s.to_vec())).collect();
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
            for seg in layout.segments.iter().filter(|s| s.trainable) {
                let r = seg.offset..seg.offset + seg.len;
                assert_eq!(bits(&params[r.clone()]), bits(&read(&vars[&seg.name])), "step {step} weights of {}", seg.name);
                assert_eq!(bits(&m[r.clone()]), bits(&state[&format!("{}.exp_avg", seg.name)]), "step {step} m of {}", seg.name);
                assert_eq!(bits(&v[r]), bits(&state[&format!("{}.exp_avg_sq", seg.name)]), "step {step} v of {}", seg.name);
            }
        }
    }
}
