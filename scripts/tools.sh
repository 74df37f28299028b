#!/usr/bin/env bash
# Installs the pinned developer tools into ./bin. Each tool is installed on
# its own (buf and protoc-gen-go clash over protobuf versions in one module).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/bin"
mkdir -p "$BIN"

install() { # name module@version
	local name=$1 mod=$2 stamp="$BIN/.$1.version"
	if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$mod" ]]; then
		return
	fi
	echo "installing $mod" >&2
	GOBIN="$BIN" GOWORK=off go install "$mod"
	echo "$mod" >"$stamp"
}

for t in "$@"; do
	case "$t" in
	buf) install buf github.com/bufbuild/buf/cmd/buf@v1.75.0 ;;
	protoc-gen-go) install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 ;;
	protoc-gen-go-grpc) install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2 ;;
	benchstat) install benchstat golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da ;;
	*) echo "unknown tool $t" >&2; exit 2 ;;
	esac
done
