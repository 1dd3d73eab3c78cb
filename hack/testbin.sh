#!/usr/bin/env bash
# Builds the real servers the test plane runs, from published Go modules, into a cache outside
# the clone keyed by version: kube-apiserver + kubectl (k8s.io/kubernetes), etcd
# (go.etcd.io/etcd/server/v3) and MinIO (github.com/minio/minio). A binary already in the cache
# is not rebuilt, so only the first run on a machine pays.
#
# Usage: hack/testbin.sh [--print-dir]
#   WARDEN_CACHE   cache root (default ~/.cache/warden)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
# MinIO publishes no semver tags on the module proxy; pin the pseudo-version of a release commit.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"

CACHE="${WARDEN_CACHE:-$HOME/.cache/warden}"
BIN="$CACHE/bin"
SRC="$CACHE/src"
mkdir -p "$BIN" "$SRC"

if [[ "${1:-}" == "--print-dir" ]]; then echo "$BIN"; exit 0; fi

export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -trimpath" GOTOOLCHAIN=local
step() { printf '[testbin] %s\n' "$*" >&2; }

have() { [[ -x "$BIN/$1" ]]; }

build_k8s() {
  local apiserver="kube-apiserver-$K8S_VERSION" kubectl="kubectl-$K8S_VERSION"
  if have "$apiserver" && have "$kubectl"; then return; fi
  local dir="$SRC/kubernetes-$K8S_VERSION" minor patch staging
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"; patch="${K8S_VERSION##*.}"
  staging="v0.$minor.$patch"
  mkdir -p "$dir"
  step "kubernetes $K8S_VERSION: resolving modules (staging modules at $staging)"
  ( cd "$dir"
    go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
    local modfile
    modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
    {
      echo "module warden.dev/testbin/kubernetes"
      echo
      grep -E '^go [0-9]' "$modfile"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      echo "replace ("
      # k8s.io/kubernetes replaces each staging module with a path inside its own tree; outside
      # it they must point at the published copies.
      grep -E '=> \./staging/src/' "$modfile" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } > go.mod
    printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubectl/pkg/cmd"\n)\n' > tools.go
    step "kubernetes $K8S_VERSION: go mod tidy (downloads on first run)"
    go mod tidy >/dev/null
    local pkg=k8s.io/component-base/version
    local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    local ld="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    step "kubernetes $K8S_VERSION: building kube-apiserver (several minutes on first run)"
    go build -ldflags "$ld" -o "$BIN/$apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$BIN/$apiserver.tmp" "$BIN/$apiserver"
    step "kubernetes $K8S_VERSION: building kubectl"
    go build -ldflags "$ld" -o "$BIN/$kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
    mv "$BIN/$kubectl.tmp" "$BIN/$kubectl"
  )
}

build_etcd() {
  local out="etcd-$ETCD_VERSION"
  if have "$out"; then return; fi
  local dir="$SRC/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  step "etcd $ETCD_VERSION: building"
  ( cd "$dir"
    printf 'module warden.dev/testbin/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
    printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' > tools.go
    go mod tidy >/dev/null
    go build -ldflags "-s -w" -o "$BIN/$out.tmp" go.etcd.io/etcd/server/v3
    mv "$BIN/$out.tmp" "$BIN/$out"
  )
}

build_minio() {
  local out="minio-$MINIO_VERSION"
  if have "$out"; then return; fi
  step "minio $MINIO_VERSION: building (several minutes on first run)"
  GOBIN="$SRC/minio-gobin" go install "github.com/minio/minio@$MINIO_VERSION"
  mv "$SRC/minio-gobin/minio" "$BIN/$out"
}

only="${1:-all}"
case "$only" in
  all) build_etcd; build_k8s; build_minio ;;
  etcd) build_etcd ;;
  kubernetes) build_k8s ;;
  minio) build_minio ;;
  *) echo "usage: $0 [all|etcd|kubernetes|minio|--print-dir]" >&2; exit 2 ;;
esac

# A stable name per tool for scripts and tests; the versioned file is the cache key.
for t in "kube-apiserver-$K8S_VERSION:kube-apiserver" "kubectl-$K8S_VERSION:kubectl" "etcd-$ETCD_VERSION:etcd" "minio-$MINIO_VERSION:minio"; do
  src="${t%%:*}"; name="${t##*:}"
  if [[ -x "$BIN/$src" ]]; then ln -sfn "$src" "$BIN/$name"; fi
done
step "binaries ready in $BIN"
