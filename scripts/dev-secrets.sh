#!/usr/bin/env bash
# Writes DEVELOPMENT-ONLY secrets for docker compose and the k8s dev overlay:
#
#   deploy/secrets/dev/credential-pepper   account: HMAC key of credential hashes
#   deploy/secrets/dev/derivation-pepper   gateway: pepper of derived ids
#   deploy/secrets/dev/signing-keys.pem    link: Ed25519 magic-link signing key
#
# Usage: scripts/dev-secrets.sh [-f] [DIR]   (DIR defaults to deploy/secrets/dev)
#
# Existing files are kept (a new credential pepper invalidates every
# credential, a new derivation pepper changes derived ids); -f replaces them.
# The files are git-ignored and world-readable (0644) so that the nonroot
# user of the images can read them when compose bind-mounts them. Never use
# them for anything but a local development system.
set -euo pipefail

force=0
if [[ "${1:-}" == "-f" ]]; then force=1; shift; fi
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/deploy/secrets/dev}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
cd "$root"

# write NAME: stdin to $dir/NAME, unless it exists and -f was not given.
write() {
	local path="$dir/$1"
	if [[ -s "$path" && "$force" == 0 ]]; then
		cat >/dev/null
		echo "kept    $path"
		return
	fi
	local tmp
	tmp="$(mktemp "$dir/.tmp.XXXXXX")"
	cat >"$tmp"
	[[ -s "$tmp" ]] || { rm -f "$tmp"; echo "dev-secrets: empty $1" >&2; exit 1; }
	chmod 0644 "$tmp"
	mv -f "$tmp" "$path"
	echo "wrote   $path"
}

# 32 random bytes as 64 hex characters.
pepper() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; echo; }

# A PKCS#8 PEM Ed25519 key, the format `link -generate-key` prints.
signing_key() {
	if command -v openssl >/dev/null && openssl genpkey -algorithm ed25519 2>/dev/null; then
		return
	fi
	go run ./services/link/cmd/link -generate-key
}

pepper | write credential-pepper
pepper | write derivation-pepper
signing_key | write signing-keys.pem
