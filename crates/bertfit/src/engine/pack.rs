//! Packed tokens: a padded [`Batch`] turned into the engine's unpadded form — the real tokens of every
//! row back to back (`ids`, `type_ids`, `positions`), `cu_seqlens` (where each sequence starts), the rows
//! of the first tokens (what CLS pooling reads) and each token's (row, position) coordinates.
//!
//! Dense layers, LayerNorm, GELU and dropout then run on `N` tokens instead of `B × S`, and attention runs
//! per sequence. Dropout masks stay functions of the *padded* coordinates (`(row · S + position) · H +
//! feature`, with `S` the batch's longest length), so the candle graph, the packed CPU engine and the GPU
//! draw identical masks (design, section 2.4).

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::family::Positions;

/// A batch with its padding removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Token ids, `[N]`.
    pub ids: Vec<u32>,
    /// Segment ids, `[N]`.
    pub type_ids: Vec<u32>,
    /// Position ids as the family numbers them, `[N]`.
    pub positions: Vec<u32>,
    /// Start of each sequence in the packed tokens, `[B + 1]`; the last entry is `N`.
    pub cu_seqlens: Vec<u32>,
    /// (row, position in the row) of each packed token, `[N]`.
    pub coords: Vec<(u32, u32)>,
    /// The padded length `S` of the batch (the dropout coordinates' row stride).
    pub padded_len: usize,
}

impl Packed {
    /// Packs `b`, whose rows must be right-padded (each attention mask a run of ones, then zeros; what
    /// [`crate::batch::collate`] builds). `pad_id` is the padding token id (RoBERTa positions count from it).
    pub fn from_batch(b: &Batch, positions: Positions, pad_id: u32) -> Result<Packed> {
        let s = b.seq_len;
        let expected = b.size * s;
        if b.input_ids.len() != expected || b.type_ids.len() != expected || b.attention_mask.len() != expected {
            return Err(Error::config("batch", format!("a {}×{s} batch needs {expected} ids, types and mask entries", b.size)));
        }
        let n = b.attention_mask.iter().filter(|&&m| m != 0).count();
        let mut p = Packed {
            ids: Vec::with_capacity(n),
            type_ids: Vec::with_capacity(n),
            positions: Vec::with_capacity(n),
            cu_seqlens: Vec::with_capacity(b.size + 1),
            coords: Vec::with_capacity(n),
            padded_len: s,
        };
        p.cu_seqlens.push(0);
        for row in 0..b.size {
            let mask = &b.attention_mask[row * s..(row + 1) * s];
            let len = mask.iter().take_while(|&&m| m != 0).count();
            if mask[len..].iter().any(|&m| m != 0) {
                return Err(Error::config("batch", format!("row {row} is not right-padded: packing needs real tokens first")));
            }
            if len == 0 {
                // the padded graph would pool a padding position; an encoded text always has its special tokens
                return Err(Error::config("batch", format!("row {row} has no tokens")));
            }
            for pos in 0..len {
                let at = row * s + pos;
                p.ids.push(b.input_ids[at]);
                p.type_ids.push(b.type_ids[at]);
                p.positions.push(match positions {
                    Positions::Absolute => pos as u32,
                    // RoBERTa counts real tokens from pad_id + 1 (create_position_ids_from_input_ids)
                    Positions::PadOffset => pad_id + 1 + pos as u32,
                    // rotary and relative families count from 0 (the engine does not run them)
                    Positions::Rotary | Positions::Relative => pos as u32,
                });
                p.coords.push((row as u32, pos as u32));
            }
            p.cu_seqlens.push(p.ids.len() as u32);
        }
        Ok(p)
    }

    /// Real tokens `N`.
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// Sequences `B`.
    pub fn sequences(&self) -> usize {
        self.cu_seqlens.len().saturating_sub(1)
    }

    /// The packed index of each sequence's first token (CLS pooling), `[B]`; `None` for an empty row.
    pub fn first_tokens(&self) -> Vec<Option<u32>> {
        self.cu_seqlens.windows(2).map(|w| (w[1] > w[0]).then_some(w[0])).collect()
    }

    /// The dropout counter of feature `h` of packed token `t` in a site of width `hidden`: the index the
    /// padded graph uses for the same element, `(row · S + position) · hidden + h`.
    pub fn dropout_index(&self, t: usize, h: usize, hidden: usize) -> u64 {
        let (row, pos) = self.coords[t];
        ((row as u64 * self.padded_len as u64 + pos as u64) * hidden as u64) + h as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::collate;
    use crate::tokenize::Encoded;

    fn encoded(lengths: &[usize]) -> Vec<Encoded> {
        lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| Encoded {
                ids: (0..n as u32).map(|t| 100 + 10 * i as u32 + t).collect(),
                type_ids: (0..n as u32).map(|t| u32::from(t >= n as u32 / 2)).collect(),
                truncated: false,
            })
            .collect()
    }

    /// The RoBERTa positions the candle graph computes from the mask (model/bert.rs `Embeddings`).
    fn graph_positions(b: &Batch, pad: u32, roberta: bool) -> Vec<u32> {
        let mut out = Vec::new();
        for row in b.attention_mask.chunks(b.seq_len) {
            let mut c = 0u32;
            for (p, &m) in row.iter().enumerate() {
                c += m;
                out.push(if !roberta { p as u32 } else if m > 0 { c + pad } else { pad });
            }
        }
        out
    }

    #[test]
    fn packing_keeps_every_real_token_with_its_padded_coordinates() {
        let enc = encoded(&[5, 1, 7, 3]);
        let b = collate(&enc, &[2, 0, 3, 1], None, 0);
        for (scheme, pad, roberta) in [(Positions::Absolute, 0, false), (Positions::PadOffset, 1, true)] {
            let p = Packed::from_batch(&b, scheme, pad).expect("pack");
            assert_eq!(p.tokens(), b.tokens);
            assert_eq!(p.sequences(), 4);
            assert_eq!(p.cu_seqlens, vec![0, 7, 12, 15, 16]);
            assert_eq!(p.first_tokens(), vec![Some(0), Some(7), Some(12), Some(15)]);
            let graph = graph_positions(&b, pad, roberta);
            let hidden = 6;
            for t in 0..p.tokens() {
                let (row, pos) = (p.coords[t].0 as usize, p.coords[t].1 as usize);
                let at = row * b.seq_len + pos;
                assert_eq!(b.attention_mask[at], 1, "token {t} is a real token");
                assert_eq!((p.ids[t], p.type_ids[t], p.positions[t]), (b.input_ids[at], b.type_ids[at], graph[at]), "token {t}");
                for h in [0, hidden - 1] {
                    assert_eq!(p.dropout_index(t, h, hidden), (at * hidden + h) as u64);
                }
            }
        }
    }

    #[test]
    fn left_padding_and_wrong_sizes_are_refused() {
        let mut b = collate(&encoded(&[3, 2]), &[0, 1], None, 0);
        b.attention_mask[3] = 0;
        b.attention_mask[5] = 1;
        assert!(Packed::from_batch(&b, Positions::Absolute, 0).is_err());
        let empty_row = collate(&encoded(&[3, 0]), &[0, 1], None, 0);
        assert!(Packed::from_batch(&empty_row, Positions::Absolute, 0).is_err(), "a row without tokens");
        let mut short = collate(&encoded(&[3]), &[0], None, 0);
        short.input_ids.pop();
        assert!(Packed::from_batch(&short, Positions::Absolute, 0).is_err());
    }

    #[test]
    fn an_empty_batch_packs_to_nothing() {
        let b = collate(&[], &[], None, 0);
        let p = Packed::from_batch(&b, Positions::Absolute, 0).expect("empty");
        assert_eq!((p.tokens(), p.sequences(), p.cu_seqlens.clone()), (0, 0, vec![0]));
    }
}
