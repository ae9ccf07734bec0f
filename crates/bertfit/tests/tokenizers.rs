//! One tokenizer of each kind against transformers' fast tokenizer (`scripts/tokenizer_reference.py`):
//! the real all-MiniLM-L6-v2 WordPiece, and the tiny WordPiece, byte-level BPE and SentencePiece Unigram
//! tokenizers of the family fixtures, on 240 texts and 60 pairs (accents, emoji, CJK, Arabic, URLs, odd
//! whitespace, long texts truncated at 24 tokens): the same ids and token types, and the truncation flag
//! set exactly where transformers cut.

use std::path::{Path, PathBuf};

use bertfit::model::ModelFolder;
use bertfit::tokenize::TextTokenizer;
use serde::Deserialize;

mod common;

#[derive(Deserialize)]
struct Reference {
    max_length: usize,
    singles: Vec<String>,
    pairs: Vec<(String, String)>,
    tokenizers: Vec<Kind>,
}

#[derive(Deserialize)]
struct Kind {
    name: String,
    root: String,
    folder: String,
    singles: Vec<(Vec<u32>, Vec<u32>)>,
    pairs: Vec<(Vec<u32>, Vec<u32>)>,
}

#[test]
fn every_tokenizer_kind_encodes_like_transformers() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer_reference.json")).expect("reference");
    let r: Reference = serde_json::from_str(&text).expect("json");
    assert_eq!(r.tokenizers.len(), 4);
    for kind in &r.tokenizers {
        let dir: PathBuf = match kind.root.as_str() {
            "repo" => repo.join(&kind.folder),
            _ => match common::require_assets() {
                Some(d) => d,
                None => continue,
            },
        };
        let tok = TextTokenizer::for_folder(&ModelFolder::open(&dir).expect("folder"), r.max_length).expect("tokenizer");
        let inputs: Vec<(&str, Option<&str>)> = r
            .singles
            .iter()
            .map(|t| (t.as_str(), None))
            .chain(r.pairs.iter().map(|(a, b)| (a.as_str(), Some(b.as_str()))))
            .collect();
        let ours = tok.encode_all(&inputs).expect("encode");
        let full = tok.full_lengths(&inputs).expect("lengths");
        let expected = kind.singles.iter().chain(&kind.pairs);
        let mut truncated = 0;
        for (i, ((enc, (ids, types)), len)) in ours.iter().zip(expected).zip(&full).enumerate() {
            assert_eq!(&enc.ids, ids, "{}: input {i} {:?}", kind.name, inputs[i]);
            assert_eq!(&enc.type_ids, types, "{}: token types of input {i}", kind.name);
            assert_eq!(enc.truncated, *len > r.max_length, "{}: truncation flag of input {i}", kind.name);
            truncated += usize::from(enc.truncated);
        }
        assert!(truncated > 10, "{}: the long texts must be cut ({truncated})", kind.name);
        eprintln!("{}: {} encodings equal, {truncated} truncated", kind.name, ours.len());
    }
}
