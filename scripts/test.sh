#!/usr/bin/env bash
# The whole test suite, as CI runs it: fetch the real assets (cached), then every test of the workspace.
# With BERTFIT_REQUIRE_ASSETS=1 the MiniLM parity tests fail instead of skipping when assets are absent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup-assets.sh >/dev/null
export BERTFIT_REQUIRE_ASSETS=1
source scripts/cuda-env.sh
cargo test --workspace --locked "$@"
