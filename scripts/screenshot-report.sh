#!/usr/bin/env bash
# Renders RUN_DIR/report.html in headless Chromium and saves a full-page screenshot, to look at the
# report as a person would: scripts/screenshot-report.sh RUN_DIR [OUT.png]
# RUN_DIR may also be an HTML file (an evaluation report). OUT defaults to RUN_DIR/report-screenshot.png.
# The window is 1400 px wide and SCREENSHOT_HEIGHT (default 6000) px tall; the page below is cut off.
# Installs Debian's chromium with apt-get when it is missing. The page is opened from disk: the
# report needs no network, and Chromium's own background traffic is switched off.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 RUN_DIR|REPORT.html [OUT.png]" >&2
    exit 2
fi

if [[ -d "$1" ]]; then
    page="$1/report.html"
    default_out="$1/report-screenshot.png"
else
    page="$1"
    default_out="${1%.*}-screenshot.png"
fi
if [[ ! -f "$page" ]]; then
    echo "$page: no such report (write it with 'bertfit report RUN_DIR')" >&2
    exit 2
fi
out="${2:-$default_out}"
page_abs="$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

browser="$(command -v chromium || command -v chromium-browser || true)"
if [[ -z "$browser" ]]; then
    echo "installing chromium (Debian package)..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    browser="$(command -v chromium)"
fi

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size=1400,"${SCREENSHOT_HEIGHT:-6000}" \
    --screenshot="$out_abs" "file://$page_abs" 2>/dev/null
[[ -s "$out_abs" ]] || { echo "no screenshot written" >&2; exit 1; }
echo "$out_abs"
