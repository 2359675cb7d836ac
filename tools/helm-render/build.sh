#!/usr/bin/env bash
# Builds tools/helm-render/bin/helm-render offline, from Debian's Go and Debian's Go library
# packages (GOPATH mode: /usr/share/gocode/src holds sprig, sigs.k8s.io/yaml and their deps).
# Needs: golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v go >/dev/null; then
  echo "helm-render: go not found; install Debian's golang-go, golang-github-masterminds-sprig-dev and golang-k8s-sigs-yaml-dev (as .ci/run does)" >&2
  exit 1
fi
# A build cache somewhere writable even where HOME is unset (CI).
if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
  export GOCACHE=/tmp/helm-render-gocache
fi
mkdir -p bin
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off CGO_ENABLED=0 \
  go build -trimpath -o bin/helm-render .
