#!/usr/bin/env bash
# gofmt and go vet over every module (generated code excluded from gofmt).
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(git ls-files '*.go' | grep -v '/gen/' | xargs gofmt -l)
if [[ -n "$unformatted" ]]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
pkgs=()
while read -r dir; do pkgs+=("$dir/..."); done < <(scripts/modules.sh)
go vet "${pkgs[@]}"
