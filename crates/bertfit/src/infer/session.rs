//! An ensemble prepared for a stream of batches (a server, a streaming prediction): its distinct
//! tokenizers ([`Encoders`], shareable across threads) and its models with their engines built once
//! ([`Session`]), the averaged probabilities and logits of each batch.

use std::sync::Arc;

use super::run::{by_batches, BatchRunner};
use super::Ensemble;
use crate::objective::Objective;
use crate::windows::Windows;
use crate::error::Result;
use crate::tokenize::{Encoded, Side, TextTokenizer};

/// The distinct tokenizers of an ensemble's members: members that tokenize alike (the folds of one
/// cross-validation run) share one encoding of each text. Cheap to clone; usable from any thread.
#[derive(Debug, Clone)]
pub struct Encoders {
    inner: Arc<EncodersInner>,
}

#[derive(Debug)]
struct EncodersInner {
    /// Distinct tokenizers, truncating at the end (`right`) and at the start (`left`).
    right: Vec<TextTokenizer>,
    left: Vec<TextTokenizer>,
    /// For each member, the index of its tokenizer.
    member: Vec<usize>,
}

/// One text (and optional second segment) tokenized by every distinct tokenizer of an ensemble, in
/// the order of [`Encoders`].
pub type Encodings = Vec<Encoded>;

impl Encoders {
    /// The distinct tokenizers of `ensemble`'s members.
    pub fn of(ensemble: &Ensemble) -> Result<Self> {
        let mut right: Vec<TextTokenizer> = Vec::new();
        let mut member = Vec::new();
        for m in ensemble.members() {
            let tok = m.tokenizer();
            match right.iter().position(|t| t.same_as(tok)) {
                Some(i) => member.push(i),
                None => {
                    member.push(right.len());
                    right.push(tok.clone());
                }
            }
        }
        let left = right.iter().map(|t| t.truncating_from(Side::Left)).collect::<Result<Vec<_>>>()?;
        Ok(Encoders { inner: Arc::new(EncodersInner { right, left, member }) })
    }

    /// Number of distinct tokenizers.
    pub fn len(&self) -> usize {
        self.inner.right.len()
    }

    /// Always false: an ensemble has at least one member.
    pub fn is_empty(&self) -> bool {
        self.inner.right.is_empty()
    }

    /// The shortest truncation length among the tokenizers: texts longer than this are cut by at least
    /// one member.
    pub fn max_len(&self) -> usize {
        self.inner.right.iter().map(TextTokenizer::max_len).min().unwrap_or(0)
    }

    /// The tokenizers truncating at `side`.
    pub fn tokenizers(&self, side: Side) -> &[TextTokenizer] {
        match side {
            Side::Left => &self.inner.left,
            Side::Right => &self.inner.right,
        }
    }

    /// Tokenizes texts with every distinct tokenizer: one [`Encodings`] per text, in order.
    pub fn encode(&self, texts: &[(&str, Option<&str>)], side: Side) -> Result<Vec<Encodings>> {
        let per_tokenizer = self.tokenizers(side).iter().map(|t| t.encode_all(texts)).collect::<Result<Vec<_>>>()?;
        let mut out: Vec<Encodings> = (0..texts.len()).map(|_| Vec::with_capacity(per_tokenizer.len())).collect();
        for encoded in per_tokenizer {
            for (row, e) in out.iter_mut().zip(encoded) {
                row.push(e);
            }
        }
        Ok(out)
    }

    /// Token counts of a text without truncation, by the shortest-truncating tokenizer (for messages
    /// about too-long inputs).
    pub fn full_length(&self, text: (&str, Option<&str>)) -> Result<usize> {
        let shortest = self.inner.right.iter().min_by_key(|t| t.max_len());
        match shortest {
            Some(t) => Ok(t.full_lengths(&[text])?.first().copied().unwrap_or(0)),
            None => Ok(0),
        }
    }
}

/// The scores of one example: the members' mean probabilities (what `predict` writes) and mean logits
/// (raw scores).
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Class probabilities, averaged over members.
    pub probs: Vec<f32>,
    /// Logits, averaged over members.
    pub logits: Vec<f32>,
}

/// An ensemble with each member's engine built once, for repeated batches on the calling thread.
#[derive(Debug)]
pub struct Session<'a> {
    ensemble: &'a Ensemble,
    encoders: Encoders,
    runners: Vec<BatchRunner>,
}

impl<'a> Session<'a> {
    /// Prepares every member of `ensemble` (engines copy their weights here, once).
    pub fn new(ensemble: &'a Ensemble, encoders: Encoders) -> Result<Self> {
        let runners = ensemble.members().iter().map(|m| BatchRunner::new(m.model())).collect::<Result<Vec<_>>>()?;
        Ok(Session { ensemble, encoders, runners })
    }

    /// Whether some member scores long texts as overlapping windows.
    pub fn chunked(&self) -> bool {
        self.ensemble.chunked()
    }

    /// Scores (probabilities or values) of texts, each member tokenizing them its own way — windows
    /// pooled per text where the member chunks long texts, truncation otherwise — averaged over members.
    pub fn text_scores(&mut self, texts: &[(&str, Option<&str>)], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let mut out: Vec<Vec<f32>> = Vec::new();
        for (member, runner) in self.ensemble.members().iter().zip(&mut self.runners) {
            let model = member.model();
            let objective = Objective::of_model(model);
            let (encoded, windows) = match member.chunking() {
                Some(c) => {
                    let Windows { encoded, doc, docs } = Windows::of(member.tokenizer(), texts, c.stride)?;
                    (encoded, Some((doc, docs, c.pooling)))
                }
                None => (member.tokenizer().encode_all(texts)?, None),
            };
            let rows = by_batches(&encoded, batch_size, model.config.pad_token_id, &mut |_, _| {}, |b| runner.logits(model, b))?;
            let scores: Vec<Vec<f32>> = rows.iter().map(|r| objective.activate(r)).collect();
            let scores = match windows {
                Some((doc, docs, pooling)) => crate::windows::pool(&scores, &doc, docs, pooling, model.problem),
                None => scores,
            };
            if out.is_empty() {
                out = scores;
            } else {
                for (acc, row) in out.iter_mut().zip(&scores) {
                    add(acc, row);
                }
            }
        }
        let n = self.ensemble.members().len() as f32;
        if n > 1.0 {
            out.iter_mut().flatten().for_each(|x| *x /= n);
        }
        Ok(out)
    }

    /// The tokenizers whose [`Encodings`] [`Session::scores`] takes.
    pub fn encoders(&self) -> &Encoders {
        &self.encoders
    }

    /// Scores of each example, in order. `examples[i]` holds example i's [`Encodings`] (from this
    /// session's [`Encoders`]); `batch_size` bounds the rows of each model batch (length-sorted).
    pub fn scores(&mut self, examples: &[Encodings], batch_size: usize) -> Result<Vec<Scores>> {
        let members = self.ensemble.members();
        let n = members.len() as f32;
        let mut probs: Vec<Vec<f32>> = Vec::new();
        let mut logits: Vec<Vec<f32>> = Vec::new();
        for (m, (member, runner)) in members.iter().zip(&mut self.runners).enumerate() {
            let which = self.encoders.inner.member[m];
            let encoded: Vec<Encoded> = examples.iter().map(|e| e[which].clone()).collect();
            let model = member.model();
            let rows = by_batches(&encoded, batch_size, model.config.pad_token_id, &mut |_, _| {}, |b| runner.logits(model, b))?;
            // probabilities (softmax, or sigmoid per label) or values, as the model's problem type reads them
            let objective = Objective::of_model(model);
            if m == 0 {
                probs = rows.iter().map(|r| objective.activate(r)).collect();
                logits = rows;
            } else {
                for ((p, l), r) in probs.iter_mut().zip(&mut logits).zip(rows) {
                    add(p, &objective.activate(&r));
                    add(l, &r);
                }
            }
        }
        if members.len() > 1 {
            for row in probs.iter_mut().chain(&mut logits) {
                row.iter_mut().for_each(|x| *x /= n);
            }
        }
        Ok(probs.into_iter().zip(logits).map(|(probs, logits)| Scores { probs, logits }).collect())
    }
}

fn add(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}
