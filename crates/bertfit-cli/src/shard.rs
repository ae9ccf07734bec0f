//! `--shard`: which slice of the input this worker predicts, given as `I/N`, or `N` with the index from
//! the task-index variable of a Kubernetes indexed job (`JOB_COMPLETION_INDEX`) or torchrun (`RANK`), or
//! `auto` for torchrun's `RANK`/`WORLD_SIZE`. The environment is read here, once, and passed on as values.

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This worker's index.
    pub index: u64,
    /// Number of workers.
    pub count: u64,
}

/// Resolves a `--shard` value with `env` (a variable lookup).
pub fn resolve(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    let number = |what: &str, v: &str| v.trim().parse::<u64>().map_err(|_| format!("--shard: {what} `{v}` is not a whole number"));
    let index_from_env = || -> Result<u64, String> {
        for var in ["JOB_COMPLETION_INDEX", "RANK"] {
            if let Some(v) = env(var) {
                return number(var, &v);
            }
        }
        Err("--shard N takes the index from JOB_COMPLETION_INDEX (Kubernetes indexed jobs) or RANK (torchrun), and neither is set; give --shard I/N".into())
    };
    let shard = match spec.split_once('/') {
        Some((i, n)) => Shard { index: number("index", i)?, count: number("count", n)? },
        None if spec == "auto" => {
            let rank = env("RANK").ok_or("--shard auto needs RANK and WORLD_SIZE (set by torchrun); give --shard I/N")?;
            let world = env("WORLD_SIZE").ok_or("--shard auto needs RANK and WORLD_SIZE (set by torchrun); give --shard I/N")?;
            Shard { index: number("RANK", &rank)?, count: number("WORLD_SIZE", &world)? }
        }
        None => Shard { index: index_from_env()?, count: number("count", spec)? },
    };
    if shard.count == 0 || shard.index >= shard.count {
        return Err(format!("--shard: index {} is not below the count {} (indices start at 0)", shard.index, shard.count));
    }
    Ok(shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn explicit_environment_and_auto() {
        assert_eq!(resolve("2/7", env(&[])), Ok(Shard { index: 2, count: 7 }));
        assert_eq!(resolve("4", env(&[("JOB_COMPLETION_INDEX", "3")])), Ok(Shard { index: 3, count: 4 }));
        assert_eq!(resolve("4", env(&[("RANK", "1")])), Ok(Shard { index: 1, count: 4 }));
        assert_eq!(resolve("auto", env(&[("RANK", "1"), ("WORLD_SIZE", "2")])), Ok(Shard { index: 1, count: 2 }));
        for (spec, vars, says) in [
            ("3/3", &[][..], "not below the count 3"),
            ("1/0", &[][..], "not below the count 0"),
            ("a/2", &[][..], "index `a`"),
            ("4", &[][..], "neither is set"),
            ("2", &[("JOB_COMPLETION_INDEX", "x")][..], "JOB_COMPLETION_INDEX `x`"),
            ("auto", &[("RANK", "0")][..], "WORLD_SIZE"),
        ] {
            let err = resolve(spec, env(vars)).expect_err(spec);
            assert!(err.contains(says), "{spec}: {err}");
        }
    }
}
