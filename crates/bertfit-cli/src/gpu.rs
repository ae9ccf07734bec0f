//! The GPU commands of the binary: `gpu-selftest` runs the CUDA backend's self-test when the binary was
//! built with the `cuda` feature, and says how to get such a binary otherwise.

use crate::args::GpuSelftestArgs;
use anyhow::Result;

#[cfg(feature = "cuda")]
pub fn selftest(a: &GpuSelftestArgs) -> Result<()> {
    use anyhow::Context;
    use bertfit::engine::selftest::{run, Options};
    if a.engine {
        return engine(a);
    }
    let opts = Options { device: a.device, tokens: a.tokens, all_algorithms: !a.first_algorithm_only };
    let report = run(&opts, &mut |line| eprintln!("{line}")).context("GPU self-test")?;
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report).context("serialise the self-test report")?;
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    }
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.clone())
        .chain(
            report
                .gemms
                .iter()
                .filter(|g| !g.repeat_equal || g.max_rel_err > g.tolerance)
                .map(|g| format!("GEMM {}", g.name)),
        )
        .collect();
    println!("gpu-selftest on {}: {} ({:.1} s)", report.device.name, if failed.is_empty() { "passed" } else { "FAILED" }, report.wall_s);
    if !failed.is_empty() {
        anyhow::bail!("GPU self-test failed: {}", failed.join(", "));
    }
    Ok(())
}

/// `gpu-selftest --engine`.
#[cfg(feature = "cuda")]
fn engine(a: &GpuSelftestArgs) -> Result<()> {
    use anyhow::Context;
    use bertfit::engine::gpu_engine::{run, EngineOptions};
    let opts = EngineOptions { device: a.device, steps: a.steps, timings: !a.no_timings };
    let report = run(&opts, &mut |line| eprintln!("{line}")).context("GPU engine self-test")?;
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report).context("serialise the engine self-test report")?;
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    }
    let failed: Vec<String> = report.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.case, c.what)).chain(report.errors.iter().cloned()).collect();
    println!("gpu-selftest --engine: {} ({:.1} s)", if failed.is_empty() { "passed" } else { "FAILED" }, report.wall_s);
    if !failed.is_empty() {
        anyhow::bail!("GPU engine self-test failed: {}", failed.join("; "));
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
pub fn selftest(_: &GpuSelftestArgs) -> Result<()> {
    anyhow::bail!(
        "this bertfit was built without CUDA support: build it with `cargo build --release --features cuda` \
         (or bash scripts/gpu-bundle.sh)"
    )
}
