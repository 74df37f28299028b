#!/usr/bin/env bash
# Fails when the committed generated code differs from what make proto writes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/generate.sh
if ! git diff --exit-code --stat -- proto/gen || [[ -n "$(git status --porcelain -- proto/gen)" ]]; then
	echo "proto/gen is stale: run 'make proto' and commit the result" >&2
	git status --porcelain -- proto/gen >&2
	exit 1
fi
echo "proto/gen is up to date"
