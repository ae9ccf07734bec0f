//! Tokenization with the Hugging Face `tokenizers` crate: WordPiece (or whatever `tokenizer.json`
//! describes), truncation to `max_len`, no padding (batches pad dynamically).

use std::path::{Path, PathBuf};

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, EncodeInput, PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::source::ModelFolder;

/// One tokenized example: plain ids, ready for batching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids including special tokens.
    pub ids: Vec<u32>,
    /// Segment ids (0 for the first text, 1 for the pair).
    pub type_ids: Vec<u32>,
    /// Whether truncation cut tokens off.
    pub truncated: bool,
}

/// A text's tokens without special tokens, and the word (0, 1, 2, … within the text) each belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Word index of each token.
    pub words: Vec<u32>,
}

/// Which end of a too-long text truncation cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    /// Keep the end of the text, cut its start.
    Left,
    /// Keep the start of the text, cut its end (the default, as in training).
    #[default]
    Right,
}

/// A tokenizer configured for classification input.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    source: PathBuf,
    max_len: usize,
}

fn tok_err(path: &Path, msg: &str) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    let path = path.to_path_buf();
    let msg = msg.to_string();
    move |source| Error::Tokenizer { path, msg, source }
}

impl TextTokenizer {
    /// The tokenizer of a model folder (`tokenizer.json`, else `vocab.txt` with the folder's lowercasing),
    /// truncating at `max_len`.
    pub fn for_folder(folder: &ModelFolder, max_len: usize) -> Result<Self> {
        match (&folder.tokenizer_json, &folder.vocab_txt) {
            (Some(json), _) => Self::from_tokenizer_json(json, max_len),
            (None, Some(vocab)) => Self::from_vocab(vocab, folder.lowercase(), max_len),
            (None, None) => Err(Error::config("model", format!("{}: no tokenizer.json or vocab.txt", folder.dir.display()))),
        }
    }

    /// Loads a `tokenizer.json`, clearing any baked-in padding and setting truncation to `max_len`.
    pub fn from_tokenizer_json(path: &Path, max_len: usize) -> Result<Self> {
        let inner = Tokenizer::from_file(path).map_err(tok_err(path, "cannot load tokenizer.json"))?;
        Self::configure(inner, path, max_len)
    }

    /// Builds a BERT WordPiece tokenizer from a `vocab.txt`.
    pub fn from_vocab(path: &Path, lowercase: bool, max_len: usize) -> Result<Self> {
        let path_str = path.to_str().ok_or_else(|| Error::config("model", format!("{} is not a UTF-8 path", path.display())))?;
        let wordpiece = WordPiece::from_file(path_str)
            .unk_token("[UNK]".into())
            .build()
            .map_err(tok_err(path, "cannot read vocab.txt"))?;
        let mut inner = Tokenizer::new(wordpiece);
        let id = |t: &str| {
            inner.token_to_id(t).ok_or_else(|| {
                Error::Tokenizer {
                    path: path.to_path_buf(),
                    msg: format!("vocab.txt has no {t} token"),
                    source: "missing special token".into(),
                }
            })
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        inner
            .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
            .map_err(tok_err(path, "cannot set the normalizer"))?
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        // as transformers' BertTokenizer: the special tokens in a text are never split (`[MASK]` stays one token)
        let specials: Vec<AddedToken> =
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].iter().filter(|t| inner.token_to_id(t).is_some()).map(|t| AddedToken::from(*t, true)).collect();
        inner.add_special_tokens(specials).map_err(tok_err(path, "cannot register the special tokens"))?;
        Self::configure(inner, path, max_len)
    }

    fn configure(mut inner: Tokenizer, path: &Path, max_len: usize) -> Result<Self> {
        if max_len < 4 {
            return Err(Error::config("max-len", format!("{max_len} is too short (at least 4)")));
        }
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                ..Default::default()
            }))
            .map_err(tok_err(path, "cannot set truncation"))?;
        Ok(TextTokenizer { inner, source: path.to_path_buf(), max_len })
    }

    /// This tokenizer truncating from the start of the text instead of its end (`Left`) or back (`Right`).
    pub fn truncating_from(&self, side: Side) -> Result<Self> {
        let mut inner = self.inner.clone();
        let direction = match side {
            Side::Left => TruncationDirection::Left,
            Side::Right => TruncationDirection::Right,
        };
        inner
            .with_truncation(Some(TruncationParams { max_length: self.max_len, strategy: TruncationStrategy::LongestFirst, direction, ..Default::default() }))
            .map_err(tok_err(&self.source, "cannot set truncation"))?;
        Ok(TextTokenizer { inner, source: self.source.clone(), max_len: self.max_len })
    }

    /// Whether `other` tokenizes every text exactly as this one does (same vocabulary, pipeline and
    /// truncation), so that one encoding serves both.
    pub fn same_as(&self, other: &TextTokenizer) -> bool {
        self.max_len == other.max_len
            && match (self.inner.to_string(false), other.inner.to_string(false)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
    }

    /// The truncation length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The id of `token`, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The file this tokenizer was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Tokenizes every example of a dataset, in order.
    pub fn encode_dataset(&self, data: &Dataset) -> Result<Vec<Encoded>> {
        let texts: Vec<(&str, Option<&str>)> = data.examples.iter().map(|e| (e.text.as_str(), e.text_pair.as_deref())).collect();
        self.encode_all(&texts)
    }

    /// Tokenizes texts (and optional second segments) in parallel.
    pub fn encode_all(&self, texts: &[(&str, Option<&str>)]) -> Result<Vec<Encoded>> {
        let encodings = self.inner.encode_batch(encode_inputs(texts), true).map_err(tok_err(&self.source, "cannot tokenize input"))?;
        Ok(encodings
            .into_iter()
            .map(|e| Encoded {
                ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
                truncated: !e.get_overflowing().is_empty(),
            })
            .collect())
    }

    /// Tokenizes texts into overlapping windows of at most `max_len` tokens (special tokens included in
    /// each): one window for a text that fits, more for a longer one, consecutive windows sharing
    /// `stride` tokens of text. A text pair is cut as by truncation (its first window only): windows
    /// cover single texts.
    pub fn encode_windows(&self, texts: &[(&str, Option<&str>)], stride: usize) -> Result<Vec<Vec<Encoded>>> {
        let mut plain = self.inner.clone();
        plain.with_truncation(None).map_err(tok_err(&self.source, "cannot clear truncation"))?;
        let added = plain.get_post_processor().map_or(0, |p| p.added_tokens(false));
        let width = self.max_len.saturating_sub(added);
        if stride >= width {
            return Err(Error::config("stride", format!("{stride} tokens of overlap leave no room: a window holds {width} tokens of text (max-len {} minus {added} special tokens)", self.max_len)));
        }
        let mut out = Vec::with_capacity(texts.len());
        for (i, &(text, pair)) in texts.iter().enumerate() {
            if pair.is_some() {
                // windows cover single texts; a pair is cut as by truncation
                out.push(self.encode_all(&texts[i..=i])?);
                continue;
            }
            let mut e = plain.encode(text, false).map_err(tok_err(&self.source, "cannot tokenize input"))?;
            e.truncate(width, stride, TruncationDirection::Right);
            let rest = e.take_overflowing();
            let mut windows = Vec::with_capacity(1 + rest.len());
            for w in std::iter::once(e).chain(rest) {
                let w = plain.post_process(w, None, true).map_err(tok_err(&self.source, "cannot add special tokens"))?;
                windows.push(Encoded { ids: w.get_ids().to_vec(), type_ids: w.get_type_ids().to_vec(), truncated: false });
            }
            out.push(windows);
        }
        Ok(out)
    }

    /// Tokenizes texts whole (no truncation, no special tokens), with the word each token belongs to: for
    /// masked-LM pretraining, which packs and masks the tokens itself.
    pub fn encode_words(&self, texts: &[&str]) -> Result<Vec<Words>> {
        let mut plain = self.inner.clone();
        plain.with_truncation(None).map_err(tok_err(&self.source, "cannot clear truncation"))?;
        let inputs: Vec<EncodeInput<'_>> = texts.iter().map(|&t| EncodeInput::from(t)).collect();
        let encodings = plain.encode_batch(inputs, false).map_err(tok_err(&self.source, "cannot tokenize input"))?;
        Ok(encodings
            .into_iter()
            .map(|e| {
                // a token without a word (none in practice) is a word of its own
                let mut next = e.get_word_ids().iter().flatten().max().map_or(0, |w| w + 1);
                let words = e
                    .get_word_ids()
                    .iter()
                    .map(|w| {
                        w.unwrap_or_else(|| {
                            next += 1;
                            next - 1
                        })
                    })
                    .collect();
                Words { ids: e.get_ids().to_vec(), words }
            })
            .collect())
    }

    /// The special tokens the tokenizer puts before and after a single text (`[CLS]` and `[SEP]`,
    /// `<s>` and `</s>`), read from its post-processor.
    pub fn single_specials(&self) -> Result<(Vec<u32>, Vec<u32>)> {
        let e = self.inner.encode("a", true).map_err(tok_err(&self.source, "cannot tokenize input"))?;
        let (ids, special) = (e.get_ids(), e.get_special_tokens_mask());
        let before = special.iter().take_while(|&&s| s == 1).count();
        let after = special[before..].iter().rev().take_while(|&&s| s == 1).count();
        Ok((ids[..before].to_vec(), ids[ids.len() - after..].to_vec()))
    }

    /// The mask token (`[MASK]`, `<mask>`) and its id: the special token whose name says mask.
    pub fn mask_token(&self) -> Option<(String, u32)> {
        let mut specials: Vec<(u32, String)> =
            self.inner.get_added_tokens_decoder().into_iter().filter(|(_, t)| t.special).map(|(id, t)| (id, t.content)).collect();
        specials.sort();
        specials
            .into_iter()
            .find(|(_, c)| c.to_ascii_lowercase().trim_matches(|ch: char| !ch.is_ascii_alphanumeric()) == "mask")
            .map(|(id, c)| (c, id))
            .or_else(|| self.token_id("[MASK]").map(|id| ("[MASK]".to_string(), id)))
    }

    /// The vocabulary entry of `id`.
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Token counts (special tokens included) of each text without truncation, for length statistics.
    pub fn full_lengths(&self, texts: &[(&str, Option<&str>)]) -> Result<Vec<usize>> {
        let mut untruncated = self.inner.clone();
        untruncated.with_truncation(None).map_err(tok_err(&self.source, "cannot clear truncation"))?;
        let encodings = untruncated.encode_batch(encode_inputs(texts), true).map_err(tok_err(&self.source, "cannot tokenize input"))?;
        Ok(encodings.iter().map(|e| e.get_ids().len()).collect())
    }

    /// Writes `tokenizer.json` (without padding; with this tokenizer's truncation).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(tok_err(path, "cannot serialise tokenizer"))?;
        std::fs::write(path, json).map_err(|e| Error::io("cannot write", path, e))
    }
}

/// Single texts and text pairs as the tokenizer's batch inputs.
fn encode_inputs<'a>(texts: &[(&'a str, Option<&'a str>)]) -> Vec<EncodeInput<'a>> {
    texts
        .iter()
        .map(|&(a, b)| match b {
            Some(b) => EncodeInput::from((a, b)),
            None => EncodeInput::from(a),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(dir: &Path) -> PathBuf {
        let words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", ",", "."];
        let p = dir.join("vocab.txt");
        std::fs::write(&p, words.join("\n")).expect("write vocab");
        p
    }

    #[test]
    fn long_texts_split_into_overlapping_windows_with_special_tokens() {
        let dir = tempfile::tempdir().expect("tmp");
        let tok = TextTokenizer::from_vocab(&vocab(dir.path()), true, 6).expect("tokenizer");
        // "the cat sat on the mat ." is 7 tokens: windows of 4 text tokens, 2 shared
        let w = tok.encode_windows(&[("the cat sat on the mat .", None), ("the cat", None)], 2).expect("windows");
        let ids: Vec<Vec<u32>> = w[0].iter().map(|e| e.ids.clone()).collect();
        assert_eq!(ids, vec![vec![2, 5, 6, 7, 8, 3], vec![2, 7, 8, 5, 9, 3], vec![2, 5, 9, 12, 3]]);
        assert_eq!(w[1].len(), 1);
        assert_eq!(w[1][0].ids, vec![2, 5, 6, 3]);
        assert!(tok.encode_windows(&[("the cat", None)], 4).is_err(), "a stride as long as the window is refused");
        // pairs keep their first (truncated) window
        let p = tok.encode_windows(&[("the cat sat on the mat", Some("the mat"))], 1).expect("pair");
        assert_eq!((p[0].len(), p[0][0].ids.len(), p[0][0].truncated), (1, 6, true));
    }

    #[test]
    fn vocab_tokenizer_adds_specials_lowercases_and_truncates() {
        let dir = tempfile::tempdir().expect("tmp");
        let tok = TextTokenizer::from_vocab(&vocab(dir.path()), true, 6).expect("tokenizer");
        let enc = tok.encode_all(&[("The cats sat", None), ("the cat sat on the mat .", None)]).expect("encode");
        assert_eq!(enc[0].ids, vec![2, 5, 6, 10, 7, 3]);
        assert!(!enc[0].truncated);
        assert_eq!(enc[1].ids.len(), 6);
        assert!(enc[1].truncated);
        assert_eq!(*enc[1].ids.last().expect("sep"), 3);
    }

    #[test]
    fn pairs_get_segment_ids_and_round_trip_through_json() {
        let dir = tempfile::tempdir().expect("tmp");
        let tok = TextTokenizer::from_vocab(&vocab(dir.path()), true, 32).expect("tokenizer");
        let enc = tok.encode_all(&[("the cat", Some("sat on the mat"))]).expect("encode");
        assert_eq!(enc[0].type_ids, vec![0, 0, 0, 0, 1, 1, 1, 1, 1]);
        let json = dir.path().join("tokenizer.json");
        tok.save(&json).expect("save");
        let again = TextTokenizer::from_tokenizer_json(&json, 32).expect("load");
        assert_eq!(again.encode_all(&[("the cat", Some("sat on the mat"))]).expect("encode"), enc);
    }

    #[test]
    fn left_truncation_keeps_the_end_and_same_as_compares_pipelines() {
        let dir = tempfile::tempdir().expect("tmp");
        let tok = TextTokenizer::from_vocab(&vocab(dir.path()), true, 5).expect("tokenizer");
        let left = tok.truncating_from(Side::Left).expect("left");
        let right = left.truncating_from(Side::Right).expect("right");
        assert_eq!(tok.encode_all(&[("the cat sat on", None)]).expect("encode")[0].ids, vec![2, 5, 6, 7, 3]);
        let cut = &left.encode_all(&[("the cat sat on", None)]).expect("encode")[0];
        assert_eq!(cut.ids, vec![2, 6, 7, 8, 3]);
        assert!(cut.truncated);
        assert!(tok.same_as(&right) && right.same_as(&tok));
        assert!(!tok.same_as(&left));
        let longer = TextTokenizer::from_vocab(&vocab(dir.path()), true, 6).expect("tokenizer");
        assert!(!tok.same_as(&longer));
    }

    #[test]
    fn baked_in_padding_is_cleared() {
        let dir = tempfile::tempdir().expect("tmp");
        let tok = TextTokenizer::from_vocab(&vocab(dir.path()), true, 32).expect("tokenizer");
        let mut inner = tok.inner.clone();
        inner.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::Fixed(16),
            ..Default::default()
        }));
        let path = dir.path().join("padded.json");
        inner.save(&path, false).expect("save");
        let loaded = TextTokenizer::from_tokenizer_json(&path, 8).expect("load");
        let enc = loaded.encode_all(&[("the cat", None)]).expect("encode");
        assert_eq!(enc[0].ids, vec![2, 5, 6, 3]);
    }

    #[test]
    fn missing_file_is_a_tokenizer_error_naming_the_path() {
        let err = TextTokenizer::from_tokenizer_json(Path::new("/nonexistent/tokenizer.json"), 8).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/tokenizer.json"));
    }
}
