#!/usr/bin/env bash
# Runs every module's benchmarks (no tests). Extra arguments go to go test,
# for example -count=10 to compare runs with benchstat, or -bench Frame.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=()
while read -r dir; do pkgs+=("$dir/..."); done < <(scripts/modules.sh)
exec go test -run '^$' -bench . -benchmem "$@" "${pkgs[@]}"
