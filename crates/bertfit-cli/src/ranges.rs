//! Value parsers for flags: range-checked numbers, so that clap answers an out-of-range value (`-3`,
//! `0`, `1.5`) with a usage error naming the flag and the allowed range (exit code 2). The ranges
//! mirror the library's `validate()` checks, which stay as the second line of defence for values that
//! come from a `--config` file. The names of `--precision` and `--data-format` are parsed here too.

use std::fmt::Display;

/// A parser for integers `≥ min` of type `T` (`usize`, `u64`): `integer ≥ 1` for counts, `≥ 0` for
/// seeds and indices.
pub fn integer_at_least<T>(min: u64) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64> + Display + Send + Sync + 'static,
{
    move |s: &str| {
        let allowed = format!("must be an integer ≥ {min}");
        // Parsed wide, so that `-3` and `99999999999999999999` get the range message rather than
        // a parse error.
        let v: i128 = s.trim().parse().map_err(|_| allowed.clone())?;
        if v < i128::from(min) {
            return Err(allowed);
        }
        u64::try_from(v).ok().and_then(|v| T::try_from(v).ok()).ok_or_else(|| format!("{allowed} and small enough to count"))
    }
}

/// A parser for finite numbers that satisfy `ok`; `allowed` describes them (`a number > 0`).
fn number(allowed: &'static str, ok: fn(f64) -> bool) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite() && ok(*x)).ok_or_else(|| format!("must be {allowed}"))
}

/// Finite numbers > 0 (a learning rate).
pub fn positive_number() -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    number("a number > 0", |x| x > 0.0)
}

/// Finite numbers ≥ 0 (weight decay, a gradient-norm clip, a tolerance).
pub fn non_negative_number() -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    number("a number ≥ 0", |x| x >= 0.0)
}

/// Numbers in [0, 1) (data shares, warmup ratio, a dropout probability).
pub fn fraction() -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    number("a number in [0, 1)", |x| (0.0..1.0).contains(&x))
}

/// `--precision`: f32 or bf16.
pub fn precision(s: &str) -> Result<bertfit::model::kernels::Precision, String> {
    bertfit::model::kernels::Precision::parse(s)
}

/// `--data-format`: csv, tsv or jsonl (ndjson).
pub fn data_format(s: &str) -> Result<bertfit::data::Format, String> {
    match s {
        "csv" => Ok(bertfit::data::Format::Csv),
        "tsv" => Ok(bertfit::data::Format::Tsv),
        "jsonl" | "ndjson" => Ok(bertfit::data::Format::JsonLines),
        other => Err(format!("`{other}`: expected csv, tsv or jsonl")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_below_the_minimum_or_malformed_are_refused_with_the_range() {
        let at_least_1 = integer_at_least::<usize>(1);
        assert_eq!(at_least_1("3"), Ok(3));
        assert_eq!(at_least_1(" 1 "), Ok(1));
        for bad in ["0", "-3", "1.5", "many", "", "1e3"] {
            assert_eq!(at_least_1(bad), Err("must be an integer ≥ 1".to_string()), "{bad:?}");
        }
        let at_least_0 = integer_at_least::<u64>(0);
        assert_eq!(at_least_0("0"), Ok(0));
        assert_eq!(at_least_0(&u64::MAX.to_string()), Ok(u64::MAX));
        assert_eq!(at_least_0("-1"), Err("must be an integer ≥ 0".to_string()));
        let too_big = at_least_0("18446744073709551616").expect_err("2^64 does not fit");
        assert!(too_big.starts_with("must be an integer ≥ 0"), "{too_big}");
    }

    #[test]
    fn numbers_outside_their_range_or_not_finite_are_refused_with_the_range() {
        let cases: [(&dyn Fn(&str) -> Result<f64, String>, &str, &[&str], &[&str]); 3] = [
            (&positive_number(), "a number > 0", &["5e-5", "1", "0.001"], &["0", "-1", "-0.0", "inf", "NaN", "x"]),
            (&non_negative_number(), "a number ≥ 0", &["0", "0.01", "3"], &["-0.5", "-1e-9", "inf", "nan"]),
            (&fraction(), "a number in [0, 1)", &["0", "0.1", "0.999"], &["1", "1.5", "-0.1", "NaN"]),
        ];
        for (parse, allowed, good, bad) in cases {
            for g in good {
                assert_eq!(parse(g), Ok(g.parse::<f64>().expect("number")), "{g}");
            }
            for b in bad {
                assert_eq!(parse(b), Err(format!("must be {allowed}")), "{b}");
            }
        }
    }
}
