//! Serde for numbers that may be NaN (a metric undefined for the data): written as JSON `null`, and
//! `null` read back as NaN, so records round-trip.

use serde::{Deserialize, Deserializer, Serializer};

/// Writes NaN as `null`.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_none()
    } else {
        s.serialize_f64(*v)
    }
}

/// Reads `null` as NaN.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct R {
        #[serde(with = "super")]
        x: f64,
    }

    #[test]
    fn nan_round_trips_through_null() {
        assert_eq!(serde_json::to_string(&R { x: f64::NAN }).expect("json"), r#"{"x":null}"#);
        assert!(serde_json::from_str::<R>(r#"{"x":null}"#).expect("parse").x.is_nan());
        assert_eq!(serde_json::from_str::<R>(r#"{"x":0.5}"#).expect("parse").x, 0.5);
    }
}
