//! Dynamic masking for masked-LM training: which tokens a sequence hides and how, drawn from the
//! counter-based RNG under a key of (seed, epoch, sequence), so every epoch masks anew and a resumed
//! run masks exactly as the uninterrupted one.

use super::corpus::Sequence;
use crate::rng;

/// The masking policy (BERT's): each ordinary token is selected with `probability`; a selected token
/// is replaced by the mask token 80 % of the time, by a random token 10 %, and kept 10 %.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Masking {
    /// Share of tokens selected (0.15).
    pub probability: f32,
    /// Select whole words: every piece of a selected word is selected.
    pub whole_word: bool,
    /// The mask token's id.
    pub mask_id: u32,
    /// Random replacements are drawn from ids `0..vocab`.
    pub vocab: u32,
}

/// One sequence after masking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// Input ids with the selected tokens replaced (or kept).
    pub ids: Vec<u32>,
    /// Positions of the selected tokens, ascending.
    pub positions: Vec<u32>,
    /// The original id at each selected position (what the model must predict).
    pub targets: Vec<u32>,
}

/// The masking key of sequence `index` in `epoch` (validation uses one fixed epoch, `u64::MAX`).
pub fn key(seed: u64, epoch: u64, index: u64) -> u64 {
    rng::key(&[seed, rng::label("mlm"), epoch, index])
}

impl Masking {
    /// Masks `seq` with the draws of `key`. Special tokens are never selected.
    pub fn apply(&self, seq: &Sequence, key: u64) -> Masked {
        let (select, action, replace) = (rng::key(&[key, 0]), rng::key(&[key, 1]), rng::key(&[key, 2]));
        let mut out = Masked { ids: seq.ids.clone(), positions: Vec::new(), targets: Vec::new() };
        for (i, (&id, &special)) in seq.ids.iter().zip(&seq.special).enumerate() {
            if special {
                continue;
            }
            let draw = if self.whole_word { seq.words[i] as u64 } else { i as u64 };
            if rng::uniform_f32(select, draw) >= self.probability {
                continue;
            }
            out.positions.push(i as u32);
            out.targets.push(id);
            let u = rng::uniform_f32(action, i as u64);
            if u < 0.8 {
                out.ids[i] = self.mask_id;
            } else if u < 0.9 {
                out.ids[i] = (rng::draw(replace, i as u64) % self.vocab.max(1) as u64) as u32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: u32 = 4;

    fn sequence(n: usize, word_len: usize) -> Sequence {
        let mut s = Sequence { ids: vec![2], special: vec![true], words: vec![u32::MAX] };
        for i in 0..n {
            s.ids.push(100 + (i % 50) as u32);
            s.special.push(false);
            s.words.push((i / word_len) as u32);
        }
        s.ids.extend([3, 0, 0]);
        s.special.extend([true, true, true]);
        s.words.extend([u32::MAX; 3]);
        s
    }

    #[test]
    fn selection_rate_and_the_80_10_10_split_hold_over_many_draws() {
        let m = Masking { probability: 0.15, whole_word: false, mask_id: MASK, vocab: 1000 };
        let seq = sequence(200, 1);
        let (mut selected, mut masked, mut random, mut kept, mut ordinary) = (0usize, 0usize, 0usize, 0usize, 0usize);
        for index in 0..500 {
            let out = m.apply(&seq, key(7, 0, index));
            ordinary += 200;
            selected += out.positions.len();
            for (&p, &t) in out.positions.iter().zip(&out.targets) {
                let p = p as usize;
                assert!(!seq.special[p], "special token selected at {p}");
                assert_eq!(t, seq.ids[p]);
                match out.ids[p] {
                    MASK => masked += 1,
                    id if id == t => kept += 1,
                    _ => random += 1,
                }
            }
            // unselected tokens are untouched
            for (i, (&a, &b)) in out.ids.iter().zip(&seq.ids).enumerate() {
                if !out.positions.contains(&(i as u32)) {
                    assert_eq!(a, b);
                }
            }
        }
        let rate = selected as f64 / ordinary as f64;
        assert!((rate - 0.15).abs() < 0.005, "selection rate {rate}");
        let share = |n: usize| n as f64 / selected as f64;
        // a random replacement can draw the original id (1 in 1000): counted as kept
        assert!((share(masked) - 0.8).abs() < 0.01, "mask share {}", share(masked));
        assert!((share(random) - 0.1).abs() < 0.01, "random share {}", share(random));
        assert!((share(kept) - 0.1).abs() < 0.01, "kept share {}", share(kept));
    }

    #[test]
    fn whole_word_masking_selects_every_piece_of_a_word() {
        let m = Masking { probability: 0.15, whole_word: true, mask_id: MASK, vocab: 1000 };
        let seq = sequence(300, 3);
        let mut selected = 0usize;
        for index in 0..200 {
            let out = m.apply(&seq, key(1, 2, index));
            selected += out.positions.len();
            let chosen: std::collections::BTreeSet<u32> = out.positions.iter().map(|&p| seq.words[p as usize]).collect();
            for (i, (&w, &special)) in seq.words.iter().zip(&seq.special).enumerate() {
                if !special {
                    assert_eq!(chosen.contains(&w), out.positions.contains(&(i as u32)), "word {w} split at {i}");
                }
            }
        }
        let rate = selected as f64 / (300.0 * 200.0);
        assert!((rate - 0.15).abs() < 0.01, "selection rate {rate}");
    }

    #[test]
    fn masks_change_with_the_epoch_and_repeat_with_the_key() {
        let m = Masking { probability: 0.15, whole_word: false, mask_id: MASK, vocab: 1000 };
        let seq = sequence(100, 1);
        assert_eq!(m.apply(&seq, key(3, 1, 9)), m.apply(&seq, key(3, 1, 9)));
        assert_ne!(m.apply(&seq, key(3, 1, 9)).positions, m.apply(&seq, key(3, 2, 9)).positions);
    }
}
