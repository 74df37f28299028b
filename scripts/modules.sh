#!/usr/bin/env bash
# Prints the directory of every module in go.work, one per line.
set -euo pipefail
cd "$(dirname "$0")/.."
go list -m -f '{{.Dir}}'
