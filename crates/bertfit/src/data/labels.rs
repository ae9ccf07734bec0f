//! The label ↔ class-id mapping: built in a stable order from training labels, saved with a model as
//! Hugging Face `id2label`, and used to encode a dataset's labels.

use std::collections::{BTreeMap, BTreeSet};

use super::Dataset;
use crate::error::{Error, Location, Result};

/// How many known labels an "unknown label" error lists before eliding the rest.
const LISTED_LABELS: usize = 20;

/// The class names of a classifier; a label's id is its position.
///
/// Serializes as a plain list of names; deserializing rejects duplicates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct LabelMap {
    labels: Vec<String>,
}

impl LabelMap {
    /// The distinct labels of `iter` in a stable order: numerically when every label is an integer (so
    /// `2, 10, 1` gives `1, 2, 10`), otherwise lexicographically by bytes.
    pub fn from_labels<'a>(iter: impl IntoIterator<Item = &'a str>) -> LabelMap {
        let distinct: BTreeSet<&str> = iter.into_iter().collect();
        let numeric: Option<Vec<(i128, &str)>> =
            distinct.iter().map(|&s| s.parse::<i128>().ok().map(|n| (n, s))).collect();
        let labels = match numeric {
            Some(mut pairs) => {
                // Ties ("1" and "01") fall back to byte order, so the order stays total.
                pairs.sort();
                pairs.into_iter().map(|(_, s)| s.to_string()).collect()
            }
            None => distinct.into_iter().map(str::to_string).collect(),
        };
        LabelMap { labels }
    }

    /// The labels in id order, e.g. from a saved model's `id2label`. Duplicates and an empty list are
    /// rejected.
    pub fn from_names(names: Vec<String>) -> Result<LabelMap> {
        if names.is_empty() {
            return Err(Error::config("labels", "the label list is empty"));
        }
        let mut seen = BTreeSet::new();
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(Error::config("labels", format!("label `{name}` appears more than once")));
            }
        }
        Ok(LabelMap { labels: names })
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels in id order.
    pub fn names(&self) -> &[String] {
        &self.labels
    }

    /// The id of `label`, if known.
    pub fn id(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// The label with id `id`, if in range.
    pub fn name(&self, id: usize) -> Option<&str> {
        self.labels.get(id).map(String::as_str)
    }

    /// The class ids of every example of `data`, errors naming the column its labels were read from
    /// (`label` when unknown). See [`LabelMap::encode_column`].
    pub fn encode(&self, data: &Dataset) -> Result<Vec<usize>> {
        self.encode_column(data, data.label_column.as_deref().unwrap_or("label"))
    }

    /// The class ids of every example of `data`; `column` is the label column's name, for error messages.
    /// An example without a label, or with a label this map does not know (e.g. a class seen in the
    /// evaluation file but never in training), is an error naming its file and line.
    pub fn encode_column(&self, data: &Dataset, column: &str) -> Result<Vec<usize>> {
        let index: BTreeMap<&str, usize> = self.labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
        data.examples
            .iter()
            .map(|ex| {
                let at = || Location::file(&data.path).line(ex.line).field(column);
                let label = ex.label.as_deref().ok_or_else(|| Error::input(at(), "missing label"))?;
                index.get(label).copied().ok_or_else(|| {
                    Error::input(at(), format!("unknown label `{label}`; known labels: {}", self.listing()))
                })
            })
            .collect()
    }

    /// The mapping in the Hugging Face config form: `{"0": "neg", "1": "pos"}`.
    pub fn to_id2label(&self) -> BTreeMap<String, String> {
        self.labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect()
    }

    /// Reads a Hugging Face `id2label` map. Its keys must be exactly the ids `0..n` and its names
    /// distinct.
    pub fn from_id2label(map: &BTreeMap<String, String>) -> Result<LabelMap> {
        let mut slots: Vec<Option<String>> = vec![None; map.len()];
        for (key, name) in map {
            let slot = key.trim().parse::<usize>().ok().and_then(|id| slots.get_mut(id));
            match slot {
                Some(slot) if slot.is_none() => *slot = Some(name.clone()),
                _ => {
                    return Err(Error::config(
                        "id2label",
                        format!("key `{key}` is not one of the ids 0..{} (each exactly once)", map.len()),
                    ))
                }
            }
        }
        // Every key filled a distinct slot in 0..len, so every slot is filled.
        LabelMap::from_names(slots.into_iter().flatten().collect()).map_err(|e| match e {
            Error::Config { msg, .. } => Error::config("id2label", msg),
            other => other,
        })
    }

    fn listing(&self) -> String {
        let shown = super::reader::list_names(self.labels.iter().take(LISTED_LABELS).map(String::as_str));
        match self.labels.len().checked_sub(LISTED_LABELS) {
            Some(more) if more > 0 => format!("{shown} and {more} more"),
            _ => shown,
        }
    }
}

impl TryFrom<Vec<String>> for LabelMap {
    type Error = Error;
    fn try_from(names: Vec<String>) -> Result<Self> {
        LabelMap::from_names(names)
    }
}

impl From<LabelMap> for Vec<String> {
    fn from(map: LabelMap) -> Self {
        map.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Example;

    fn dataset(labels: &[Option<&str>]) -> Dataset {
        let examples = labels
            .iter()
            .enumerate()
            .map(|(i, l)| Example {
                id: None,
                text: format!("text {i}"),
                text_pair: None,
                label: l.map(str::to_string), label_set: None,
                line: i as u64 + 2,
            })
            .collect();
        Dataset { path: "eval.csv".into(), examples, id_column: None, label_column: None }
    }

    #[test]
    fn integer_labels_sort_numerically() {
        let map = LabelMap::from_labels(["2", "10", "1", "2", "-3"]);
        assert_eq!(map.names(), ["-3", "1", "2", "10"]);
        assert_eq!(map.id("10"), Some(3));
        assert_eq!(map.name(0), Some("-3"));
        assert_eq!(map.name(4), None);
    }

    #[test]
    fn other_labels_sort_by_bytes() {
        let map = LabelMap::from_labels(["pos", "neg", "Neutral", "10", "neg"]);
        assert_eq!(map.names(), ["10", "Neutral", "neg", "pos"]);
        assert_eq!(map.len(), 4);
        assert!(LabelMap::from_labels([]).is_empty());
    }

    #[test]
    fn encode_reports_unknown_and_missing_labels() {
        let map = LabelMap::from_labels(["neg", "pos"]);
        assert_eq!(map.encode(&dataset(&[Some("pos"), Some("neg")])).expect("encode"), [1, 0]);
        let e = map.encode(&dataset(&[Some("pos"), Some("spam")])).expect_err("unknown").to_string();
        assert_eq!(e, "eval.csv, line 3, field `label`: unknown label `spam`; known labels: `neg`, `pos`");
        let e = map.encode_column(&dataset(&[None]), "gold").expect_err("missing").to_string();
        assert_eq!(e, "eval.csv, line 2, field `gold`: missing label");
    }

    #[test]
    fn id2label_round_trips_and_is_validated() {
        let map = LabelMap::from_labels(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]);
        let id2label = map.to_id2label();
        assert_eq!(id2label["10"], "k");
        assert_eq!(LabelMap::from_id2label(&id2label).expect("round trip"), map);

        let gap: BTreeMap<String, String> = [("0", "a"), ("2", "b")].map(|(k, v)| (k.into(), v.into())).into();
        assert!(LabelMap::from_id2label(&gap).is_err());
        let dup: BTreeMap<String, String> = [("0", "a"), ("1", "a")].map(|(k, v)| (k.into(), v.into())).into();
        assert!(LabelMap::from_id2label(&dup).is_err());
        let bad: BTreeMap<String, String> = [("x", "a")].map(|(k, v)| (k.into(), v.into())).into();
        assert!(LabelMap::from_id2label(&bad).is_err());
    }

    #[test]
    fn serializes_as_a_list_and_rejects_duplicates() {
        let map = LabelMap::from_names(vec!["neg".into(), "pos".into()]).expect("names");
        let json = serde_json::to_string(&map).expect("serialize");
        assert_eq!(json, r#"["neg","pos"]"#);
        assert_eq!(serde_json::from_str::<LabelMap>(&json).expect("deserialize"), map);
        assert!(serde_json::from_str::<LabelMap>(r#"["a","a"]"#).is_err());
        assert!(LabelMap::from_names(vec![]).is_err());
    }
}
