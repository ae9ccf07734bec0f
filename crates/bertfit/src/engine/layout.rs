//! Parameter layout: every weight of a classifier (canonical Hugging Face names, as the graph's
//! `ParamStore` holds them) placed at an offset of one flat f32 buffer, so gradients, AdamW moments and
//! the bf16 copy are single buffers with the same offsets and the optimizer is one pass over them.
//!
//! Each layer's query, key and value weights are consecutive row blocks (and their biases consecutive), so
//! `Wqkv` is one `[3H, H]` matrix and `bqkv` one `[3H]` vector without a copy. Every segment carries its
//! weight-decay flag (AdamW's rule) and its trainable flag (the run's freezing); offsets are aligned to 64
//! floats (256 bytes), which the CUDA arena also requires.

use crate::model::head::HeadSpec;
use crate::model::params::decays;
use crate::model::{BertConfig, Freeze};

/// Alignment of every segment, in f32 elements (256 bytes).
pub const ALIGN: usize = 64;

/// One weight tensor's place in the flat buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Canonical name (`encoder.layer.0.attention.self.query.weight`, `classifier.weight`, …).
    pub name: String,
    /// Shape, Hugging Face layout (`[out, in]` for dense weights).
    pub shape: Vec<usize>,
    /// First element.
    pub offset: usize,
    /// Elements.
    pub len: usize,
    /// AdamW applies weight decay (not to biases and LayerNorm weights).
    pub decay: bool,
    /// Receives gradients in this run.
    pub trainable: bool,
}

/// Every weight of a classifier, in buffer order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The segments, by increasing offset.
    pub segments: Vec<Segment>,
    /// Elements of the whole buffer (aligned).
    pub total: usize,
}

impl Layout {
    /// The layout of an encoder of `cfg` (its family's tables; the pooler when the head uses it) and the
    /// head `head`, trainable as `freeze` says.
    pub fn new(cfg: &BertConfig, head: &HeadSpec, freeze: Freeze) -> Layout {
        let (h, i, e) = (cfg.hidden_size, cfg.intermediate_size, cfg.embedding_size());
        let mut tensors: Vec<(String, Vec<usize>)> = vec![
            ("embeddings.word_embeddings.weight".into(), vec![cfg.vocab_size, e]),
            ("embeddings.position_embeddings.weight".into(), vec![cfg.max_position_embeddings, e]),
        ];
        if cfg.family().token_types {
            tensors.push(("embeddings.token_type_embeddings.weight".into(), vec![cfg.type_vocab_size, e]));
        }
        tensors.push(("embeddings.LayerNorm.weight".into(), vec![e]));
        tensors.push(("embeddings.LayerNorm.bias".into(), vec![e]));
        if e != h {
            tensors.push(("embeddings_project.weight".into(), vec![h, e]));
            tensors.push(("embeddings_project.bias".into(), vec![h]));
        }
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            // Q, K, V weights as consecutive row blocks of Wqkv, then their biases as one bqkv
            for part in ["query", "key", "value"] {
                tensors.push((format!("{p}.attention.self.{part}.weight"), vec![h, h]));
            }
            for part in ["query", "key", "value"] {
                tensors.push((format!("{p}.attention.self.{part}.bias"), vec![h]));
            }
            tensors.extend([
                (format!("{p}.attention.output.dense.weight"), vec![h, h]),
                (format!("{p}.attention.output.dense.bias"), vec![h]),
                (format!("{p}.attention.output.LayerNorm.weight"), vec![h]),
                (format!("{p}.attention.output.LayerNorm.bias"), vec![h]),
                (format!("{p}.intermediate.dense.weight"), vec![i, h]),
                (format!("{p}.intermediate.dense.bias"), vec![i]),
                (format!("{p}.output.dense.weight"), vec![h, i]),
                (format!("{p}.output.dense.bias"), vec![h]),
                (format!("{p}.output.LayerNorm.weight"), vec![h]),
                (format!("{p}.output.LayerNorm.bias"), vec![h]),
            ]);
        }
        if head.pooler {
            tensors.push(("pooler.dense.weight".into(), vec![h, h]));
            tensors.push(("pooler.dense.bias".into(), vec![h]));
        }
        let sizes = &head.sizes;
        for (k, name) in head.names.iter().enumerate() {
            tensors.push((format!("{name}.weight"), vec![sizes[k + 1], sizes[k]]));
            tensors.push((format!("{name}.bias"), vec![sizes[k + 1]]));
        }
        let mut segments = Vec::with_capacity(tensors.len());
        let mut at = 0usize;
        for (name, shape) in tensors {
            let len: usize = shape.iter().product();
            // Q/K/V blocks stay contiguous: their sizes are multiples of H, aligned when H is (always,
            // for real models); other segments start aligned
            let offset = if is_qkv_follower(&name) { at } else { at.next_multiple_of(ALIGN) };
            segments.push(Segment { decay: decays(&name), trainable: freeze.trainable(&name), name, shape, offset, len });
            at = offset + len;
        }
        Layout { segments, total: at.next_multiple_of(ALIGN) }
    }

    /// A segment by name.
    pub fn get(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// Elements that receive gradients (the sizes of the gradient and AdamW buffers' live parts).
    pub fn trainable_len(&self) -> usize {
        self.segments.iter().filter(|s| s.trainable).map(|s| s.len).sum()
    }
}

/// Key and value follow query directly (weights after weights, biases after biases).
fn is_qkv_follower(name: &str) -> bool {
    name.contains(".attention.self.key.") || name.contains(".attention.self.value.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HeadConfig;
    use crate::model::random::{tiny_config, write_random_model};
    use crate::model::{Classifier, LoadOptions, ModelFolder};

    fn graph(model_type: &str, head: HeadConfig, freeze: Freeze) -> Classifier {
        let dir = tempfile::tempdir().expect("dir");
        let mut cfg = tiny_config(12);
        cfg.model_type = model_type.into();
        cfg.pad_token_id = 1;
        if model_type == "electra" {
            cfg.extra.insert("embedding_size".into(), 8.into());
        }
        let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d", "e", "f", "g", "h"].iter().map(|s| s.to_string()).collect();
        write_random_model(dir.path(), &cfg, &vocab, 1).expect("model");
        let labels = Some(vec!["x".into(), "y".into(), "z".into()]);
        Classifier::load(&ModelFolder::open(dir.path()).expect("folder"), LoadOptions { labels, head: Some(head), freeze, ..Default::default() })
            .expect("classifier")
    }

    #[test]
    fn the_layout_holds_exactly_the_graphs_weights_with_their_flags() {
        let cases = [
            (HeadConfig::default(), Freeze::default()),
            (HeadConfig { hidden: vec![16, 8], ..HeadConfig::default() }, Freeze { layers: 1, ..Freeze::default() }),
            (HeadConfig { pooling: crate::model::Pooling::Mean, ..HeadConfig::default() }, Freeze { encoder: true, ..Freeze::default() }),
        ];
        for ((head, freeze), family) in cases.iter().cloned().flat_map(|c| ["bert", "roberta", "distilbert", "electra"].map(|f| (c.clone(), f))) {
            let model = graph(family, head.clone(), freeze);
            let layout = Layout::new(&model.config, &model.head_spec(), freeze);
            let store = model.params().vars();
            let mut names: Vec<&str> = layout.segments.iter().map(|s| s.name.as_str()).collect();
            names.sort();
            let graph_names: Vec<&str> = store.keys().map(String::as_str).collect();
            assert_eq!(names, graph_names, "{family}, head {head:?}");
            for s in &layout.segments {
                assert_eq!(store[&s.name].dims(), s.shape.as_slice(), "{}", s.name);
                assert_eq!(s.decay, decays(&s.name));
                assert_eq!(s.trainable, freeze.trainable(&s.name));
            }
            let trainable: usize = model.trainable().iter().map(|(_, v)| v.elem_count()).sum();
            assert_eq!(layout.trainable_len(), trainable);
        }
    }

    #[test]
    fn segments_are_disjoint_aligned_and_qkv_contiguous() {
        let cfg = tiny_config(12);
        let head = HeadSpec::new(&HeadConfig::default(), cfg.family(), cfg.hidden_size, 2, 0.1);
        let layout = Layout::new(&cfg, &head, Freeze::default());
        for w in layout.segments.windows(2) {
            assert!(w[0].offset + w[0].len <= w[1].offset, "{} overlaps {}", w[0].name, w[1].name);
        }
        for s in &layout.segments {
            if !is_qkv_follower(&s.name) {
                assert!(s.offset.is_multiple_of(ALIGN), "{}", s.name);
            }
        }
        let last = layout.segments.last().expect("segments");
        assert!(last.offset + last.len <= layout.total && layout.total.is_multiple_of(ALIGN));
        let h = cfg.hidden_size;
        for l in 0..cfg.num_hidden_layers {
            let at = |part: &str, kind: &str| layout.get(&format!("encoder.layer.{l}.attention.self.{part}.{kind}")).expect("qkv").offset;
            assert_eq!(at("key", "weight"), at("query", "weight") + h * h);
            assert_eq!(at("value", "weight"), at("query", "weight") + 2 * h * h);
            assert_eq!(at("key", "bias"), at("query", "bias") + h);
            assert_eq!(at("value", "bias"), at("query", "bias") + 2 * h);
        }
    }
}
