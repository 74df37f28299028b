#!/usr/bin/env bash
# Runs the benchmark kit (ams bench, docs/benchmarks.md).
#
#   scripts/bench.sh                  every scenario, short (under 5 minutes)
#   scripts/bench.sh fanout [flags]   one scenario, full size (or add -short)
#   scripts/bench.sh all [flags]      every scenario, full size
#   scripts/bench.sh go [go test flags]
#                                     the Go benchmarks of every module
#                                     (-count=10 to compare with benchstat)
#
# The kit builds bin/ams and bin/gateway first; tables go to stdout,
# progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "go" ]]; then
	shift
	pkgs=()
	while read -r dir; do pkgs+=("$dir/..."); done < <(scripts/modules.sh)
	exec go test -run '^$' -bench . -benchmem "$@" "${pkgs[@]}"
fi
CGO_ENABLED=0 go build -o bin/ ./services/gateway/cmd/gateway ./services/gateway/cmd/ams
if [[ $# -eq 0 ]]; then
	set -- all -short
fi
exec bin/ams bench "$@" -gateway-bin bin/gateway
