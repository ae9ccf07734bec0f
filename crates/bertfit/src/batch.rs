//! Batching: seeded epoch order with length grouping, and padding into plain `Vec<u32>` batches.
//!
//! The batch order of an epoch is a pure function of (seed, epoch, lengths), so a run resumed mid-epoch
//! can skip the batches already done and see the same ones after.

use crate::data::Targets;
use crate::rng;
use crate::tokenize::Encoded;

/// A padded batch: the framework-free boundary between tokenization and the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Number of examples.
    pub size: usize,
    /// Padded sequence length (the longest in the batch).
    pub seq_len: usize,
    /// Token ids, row-major (size × seq_len).
    pub input_ids: Vec<u32>,
    /// Segment ids, row-major.
    pub type_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding, row-major.
    pub attention_mask: Vec<u32>,
    /// Class ids (empty when unlabeled or not single-label).
    pub labels: Vec<usize>,
    /// Dense targets, row-major: each row's 0/1 label indicators (multi-label) or its value (regression);
    /// empty otherwise.
    pub targets: Vec<f32>,
    /// Indices of the examples in their dataset.
    pub indices: Vec<usize>,
    /// Number of real (non-pad) tokens.
    pub tokens: usize,
}

/// Pads the examples at `indices` to the longest among them.
pub fn collate(encoded: &[Encoded], indices: &[usize], labels: Option<&[usize]>, pad_id: u32) -> Batch {
    let seq_len = indices.iter().map(|&i| encoded[i].ids.len()).max().unwrap_or(0);
    let n = indices.len() * seq_len;
    let (mut input_ids, mut type_ids, mut attention_mask) = (vec![pad_id; n], vec![0; n], vec![0; n]);
    let mut tokens = 0;
    for (row, &i) in indices.iter().enumerate() {
        let e = &encoded[i];
        let base = row * seq_len;
        input_ids[base..base + e.ids.len()].copy_from_slice(&e.ids);
        type_ids[base..base + e.type_ids.len()].copy_from_slice(&e.type_ids);
        attention_mask[base..base + e.ids.len()].fill(1);
        tokens += e.ids.len();
    }
    Batch {
        size: indices.len(),
        seq_len,
        input_ids,
        type_ids,
        attention_mask,
        labels: labels.map(|l| indices.iter().map(|&i| l[i]).collect()).unwrap_or_default(),
        targets: Vec::new(),
        indices: indices.to_vec(),
        tokens,
    }
}

/// Pads the examples at `indices` with their targets: class ids, or dense target rows.
pub fn collate_targets(encoded: &[Encoded], indices: &[usize], targets: &Targets, pad_id: u32) -> Batch {
    let mut b = collate(encoded, indices, targets.classes(), pad_id);
    if targets.classes().is_none() {
        b.targets = indices.iter().flat_map(|&i| targets.row(i).iter().copied()).collect();
    }
    b
}

/// How many megabatch-sized windows length grouping sorts within (as in transformers' LengthGroupedSampler).
const MEGABATCH_FACTOR: usize = 50;

/// The batches of one training epoch, as lists of example indices.
///
/// Shuffled with the (seed, epoch) stream. With `group_by_length`, the shuffled order is cut into windows
/// of 50 batches, each window sorted by length and cut into batches, and the batch order shuffled again:
/// batches hold similar lengths (less padding) yet every epoch differs.
pub fn epoch_batches(lengths: &[usize], batch_size: usize, seed: u64, epoch: u64, group_by_length: bool) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut stream = rng::Stream::new(&[seed, rng::label("shuffle"), epoch]);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    stream.shuffle(&mut order);
    if !group_by_length {
        return order.chunks(batch_size).map(|c| c.to_vec()).collect();
    }
    let mut batches = Vec::with_capacity(order.len().div_ceil(batch_size));
    for window in order.chunks(batch_size * MEGABATCH_FACTOR) {
        let mut w = window.to_vec();
        w.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(w.chunks(batch_size).map(|c| c.to_vec()));
    }
    stream.shuffle(&mut batches);
    batches
}

/// Batches for inference: examples sorted by length (least padding), in order. Callers map results back
/// through [`Batch::indices`].
pub fn inference_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    order.chunks(batch_size.max(1)).map(|c| c.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: &[u32]) -> Encoded {
        Encoded { ids: ids.to_vec(), type_ids: vec![0; ids.len()], truncated: false }
    }

    #[test]
    fn collate_pads_to_longest() {
        let data = vec![enc(&[101, 5, 102]), enc(&[101, 5, 6, 7, 102])];
        let b = collate(&data, &[0, 1], Some(&[1, 0]), 0);
        assert_eq!(b.seq_len, 5);
        assert_eq!(b.input_ids, vec![101, 5, 102, 0, 0, 101, 5, 6, 7, 102]);
        assert_eq!(b.attention_mask, vec![1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(b.labels, vec![1, 0]);
        assert_eq!(b.tokens, 8);
        let sets = Targets::Sets { width: 2, hot: vec![1., 0., 1., 1.] };
        let b = collate_targets(&data, &[1, 0], &sets, 0);
        assert_eq!((b.labels.len(), b.targets.as_slice()), (0, [1., 1., 1., 0.].as_slice()));
        let b = collate_targets(&data, &[1], &Targets::Classes(vec![4, 7]), 0);
        assert_eq!((b.labels.as_slice(), b.targets.len()), ([7].as_slice(), 0));
    }

    #[test]
    fn epochs_cover_every_example_once_and_are_seeded() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 120 + 3).collect();
        for group in [false, true] {
            let a = epoch_batches(&lengths, 16, 7, 0, group);
            let mut all: Vec<usize> = a.iter().flatten().copied().collect();
            all.sort();
            assert_eq!(all, (0..1000).collect::<Vec<_>>());
            assert_eq!(a, epoch_batches(&lengths, 16, 7, 0, group));
            assert_ne!(a, epoch_batches(&lengths, 16, 7, 1, group));
            assert_ne!(a, epoch_batches(&lengths, 16, 8, 0, group));
        }
    }

    #[test]
    fn length_grouping_reduces_padding() {
        let lengths: Vec<usize> = (0..2000).map(|i| (i * 7919) % 200 + 5).collect();
        let padded = |batches: &[Vec<usize>]| -> usize {
            batches.iter().map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap_or(0)).sum()
        };
        let random = padded(&epoch_batches(&lengths, 32, 1, 0, false));
        let grouped = padded(&epoch_batches(&lengths, 32, 1, 0, true));
        assert!(grouped * 10 < random * 7, "grouped {grouped} vs random {random}");
    }

    #[test]
    fn inference_batches_sort_by_length() {
        let b = inference_batches(&[5, 1, 3, 2], 2);
        assert_eq!(b, vec![vec![1, 3], vec![2, 0]]);
    }
}
