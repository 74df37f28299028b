#!/usr/bin/env bash
# Regenerates the Go code of proto/ with buf and the pinned local plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/tools.sh buf protoc-gen-go protoc-gen-go-grpc
export PATH="$PWD/bin:$PATH"
cd proto
buf lint
buf format -d --exit-code
buf generate
