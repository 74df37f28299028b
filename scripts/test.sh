#!/usr/bin/env bash
# Runs every module's tests with the race detector, shuffled, uncached.
# Extra arguments go to go test (for example -run or -short).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=()
while read -r dir; do pkgs+=("$dir/..."); done < <(scripts/modules.sh)
exec go test -race -shuffle=on -count=1 -timeout 30m "$@" "${pkgs[@]}"
