#!/usr/bin/env bash
# Builds the Kubernetes control plane and node binaries the `kubernetes` test tier runs, once, from Debian
# bookworm's `kubernetes` source package (the full upstream v1.20.2 tree, vendor/ included) with Debian's Go 1.19.
# The result lands in a cache outside the checkout, keyed by the source package version, and is reused:
#   ${DIGITS_K8S_CACHE:-~/.cache/digits}/kubernetes-1.20.2-<debian version>-r<REVISION>/bin/
# One patch applies first (reflect2-go1.18-mapiterinit.patch): the vendored modern-go/reflect2 v1.0.1 calls
# reflect.mapiterinit with its pre-Go-1.18 signature, and kube-apiserver built with Go 1.19 segfaults when
# it encodes a custom resource. REVISION changes whenever the build does, so an older cache is not reused.
# Also the pod sandbox's `pause`, compiled statically from the tree's C source. Prints that bin directory.
# Needs the Debian packages and the deb-src line of `make kubernetes-deps`.
set -euo pipefail

DEBIAN_VERSION=1.20.5+really1.20.2-1.1+deb12u1
UPSTREAM=1.20.2
REVISION=2
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE_ROOT=${DIGITS_K8S_CACHE:-$HOME/.cache/digits}
PREFIX=$CACHE_ROOT/kubernetes-$UPSTREAM-$DEBIAN_VERSION-r$REVISION
BIN=$PREFIX/bin
COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

missing=()
for c in "${COMMANDS[@]}"; do [ -x "$BIN/$c" ] || missing+=("$c"); done
if [ ${#missing[@]} = 0 ] && [ -x "$BIN/pause" ]; then echo "$BIN"; exit 0; fi

BUILD=$PREFIX/build
rm -rf "$BUILD" && mkdir -p "$BUILD"
trap 'rm -rf "$BUILD"' EXIT
cd "$BUILD"
apt-get source --download-only -qq "kubernetes=$DEBIAN_VERSION" >&2
tar xzf kubernetes_*.orig.tar.gz
cd "kubernetes-$UPSTREAM"
patch -s -p1 < "$HERE/reflect2-go1.18-mapiterinit.patch"
mkdir -p "$BIN"
gcc -Os -static -o "$BIN/pause.new" build/pause/linux/pause.c && mv "$BIN/pause.new" "$BIN/pause"
[ ${#missing[@]} = 0 ] && { echo "$BIN"; exit 0; }

export PATH=/usr/lib/go-1.19/bin:$PATH GOPROXY=off CGO_ENABLED=0 GOCACHE=$BUILD/gocache
# The tarball lacks pkg/generated/openapi/zz_generated.openapi.go; this also lays out the GOPATH tree.
make gen_openapi >&2
export GO111MODULE=off GOPATH=$PWD/_output/local/go
cd "$GOPATH/src/k8s.io/kubernetes"
V=k8s.io/kubernetes/vendor/k8s.io/component-base/version
mkdir -p "$BUILD/out"
go build -ldflags "-s -w -X $V.gitVersion=v$UPSTREAM -X $V.gitMajor=1 -X $V.gitMinor=20" -o "$BUILD/out/" \
    "${missing[@]/#/./cmd/}" >&2
for c in "${missing[@]}"; do mv "$BUILD/out/$c" "$BIN/$c"; done
echo "$BIN"
