#!/usr/bin/env bash
# Fuzzes every fuzz target of the repository for a short while each
# (FUZZTIME, default 10s). `make test` already runs each target's seed
# corpus (testdata/fuzz) as ordinary tests; this explores beyond it. New
# failing inputs land in the package's testdata/fuzz: commit them as seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
failed=0
while IFS=: read -r file line; do
	name=$(sed -nE "${line}s/^func (Fuzz[A-Za-z0-9_]*)\\(.*/\\1/p" "$file")
	dir=$(dirname "$file")
	echo "--- $dir $name ($fuzztime)"
	if ! (cd "$dir" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" .); then
		failed=1
	fi
done < <(git ls-files '*_test.go' | xargs grep -n -E '^func Fuzz[A-Za-z0-9_]*\(' | cut -d: -f1,2)
exit "$failed"
