//! Helpers shared by the integration test files: where the real assets are.

use std::path::PathBuf;

/// The all-MiniLM-L6-v2 folder of the assets cache, when present.
fn asset_dir() -> Option<PathBuf> {
    let root = std::env::var_os("BERTFIT_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bertfit")))?;
    let dir = root.join("models/all-MiniLM-L6-v2");
    dir.join("model.safetensors").exists().then_some(dir)
}

/// Assets are fetched by scripts/setup-assets.sh; CI sets BERTFIT_REQUIRE_ASSETS=1 so a missing asset fails.
pub fn require_assets() -> Option<PathBuf> {
    match asset_dir() {
        Some(d) => Some(d),
        None if std::env::var("BERTFIT_REQUIRE_ASSETS").is_ok_and(|v| v == "1") => {
            panic!("all-MiniLM-L6-v2 not found: run scripts/setup-assets.sh")
        }
        None => {
            eprintln!("SKIPPED: all-MiniLM-L6-v2 assets absent (run scripts/setup-assets.sh)");
            None
        }
    }
}

