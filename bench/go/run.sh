#!/usr/bin/env bash
# Runs the Go counterparts of the criterion benchmarks against Debian's
# golang/groupcache, offline, in GOPATH mode.
# Needs: apt-get install -y golang-go golang-github-golang-groupcache-dev
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/src/corebench"
GO111MODULE=off GOPROXY=off GOFLAGS=-mod=mod GOPATH="$here:/usr/share/gocode" \
  go test -run '^$' -bench . -benchtime "${BENCHTIME:-1s}" -count "${COUNT:-5}" "$@"
