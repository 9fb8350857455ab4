#!/usr/bin/env bash
# Builds and caches what ferryman's Kubernetes lab needs, as root. Idempotent: a second
# run finds everything in the cache and only checks.
#
#   - kubelet and kube-apiserver (and kubectl with FERRYMAN_K8S_KUBECTL=1), built from the
#     k8s.io/kubernetes module at one pinned version. That module's go.mod replaces its
#     staging modules (k8s.io/api, k8s.io/apimachinery, ...) with ./staging paths, which a
#     module download does not have: a tiny build module of our own requires
#     k8s.io/kubernetes and pins every staging module to its published v0.X.Y.
#     Binaries: /var/cache/ferryman/k8s-<version>/; module and build caches:
#     /var/cache/ferryman/go/. The build never takes more than one core
#     (nice -n 19, GOMAXPROCS=1, go build -p 1).
#   - etcd (etcd-server) and docker-registry from Debian 12; containerd 2.1 and the CNI
#     plugins from Debian sid. Fetched with apt-get download (sid through a private sources
#     list, lists and cache folder: the system's package lists never see sid), the .debs
#     cached under /var/cache/ferryman/debs/, unpacked with dpkg -x into a private prefix
#     (/opt/ferryman/k8s), never installed over the system's.
#
# Prints, at the end, the paths and versions it found or made. Timings of the Go build go
# to /var/cache/ferryman/k8s-<version>/build-times.
set -euo pipefail

K8S_VERSION=${FERRYMAN_K8S_VERSION:-v1.35.4}
CACHE=${FERRYMAN_CACHE:-/var/cache/ferryman}
PREFIX=${FERRYMAN_K8S_PREFIX:-/opt/ferryman/k8s}
BIN="$CACHE/k8s-$K8S_VERSION"
GOROOT_CACHE="$CACHE/go"
DEBS="$CACHE/debs"
WANT_KUBECTL=${FERRYMAN_K8S_KUBECTL:-0}

[ "$(id -u)" = 0 ] || { echo "k8s build: needs root" >&2; exit 1; }
log() { printf 'k8s build: %s\n' "$*"; }

# --- Debian packages -----------------------------------------------------------------
mkdir -p "$DEBS/bookworm" "$DEBS/sid"

# apt-get download into $1 of the packages after it, from suite $SUITE, through a private
# sources list, lists folder and cache: the system's apt configuration is left alone.
fetch_debs() {
  local dest=$1; shift
  local suite=$SUITE
  local work; work=$(mktemp -d)
  mkdir -p "$work/parts" "$work/lists/partial" "$work/cache/archives/partial"
  cat > "$work/parts/$suite.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  local opts=(-o Dir::State::Lists="$work/lists" -o Dir::Etc::SourceList=/dev/null
              -o Dir::Etc::SourceParts="$work/parts" -o Dir::Cache="$work/cache"
              -o Dir::State::Status=/var/lib/dpkg/status -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -qq
  (cd "$dest" && apt-get "${opts[@]}" download "$@" >/dev/null)
  rm -rf "$work"
}

# The packages each piece needs, the suite they come from, and a file that shows them unpacked.
need_debs() {  # SUITE FILE-IN-PREFIX PACKAGE...
  local suite=$1 probe=$2; shift 2
  local have=1
  for p in "$@"; do ls "$DEBS/$suite/${p}_"*.deb >/dev/null 2>&1 || have=0; done
  if [ $have = 0 ]; then
    log "fetching $* from Debian $suite"
    SUITE=$suite fetch_debs "$DEBS/$suite" "$@"
  fi
  if [ ! -e "$PREFIX/$probe" ]; then
    for p in "$@"; do dpkg -x "$(ls "$DEBS/$suite/${p}_"*.deb | sort -V | tail -1)" "$PREFIX"; done
  fi
}

mkdir -p "$PREFIX"
need_debs bookworm usr/bin/etcd etcd-server
need_debs bookworm usr/bin/docker-registry docker-registry
need_debs sid usr/bin/containerd containerd
need_debs sid usr/lib/cni/bridge containernetworking-plugins

# --- Kubernetes binaries -------------------------------------------------------------
staging_version() {  # v1.35.4 -> v0.35.4
  local v=${1#v}
  echo "v0.${v#*.}"
}

binaries=(kubelet kube-apiserver)
[ "$WANT_KUBECTL" = 1 ] && binaries+=(kubectl)

missing=()
version_of() {  # kubectl has no --version
  if [ "$1" = kubectl ]; then "$BIN/$1" version --client 2>/dev/null; else "$BIN/$1" --version 2>/dev/null; fi
}
for b in "${binaries[@]}"; do
  if [ ! -x "$BIN/$b" ] || ! version_of "$b" | grep -q "$K8S_VERSION"; then
    missing+=("$b")
  fi
done

build_k8s() {
if [ ${#missing[@]} -gt 0 ]; then
  command -v go >/dev/null || { echo "k8s build: needs Go (go1.25 or newer) on PATH" >&2; exit 1; }
  export GOMODCACHE="$GOROOT_CACHE/mod" GOCACHE="$GOROOT_CACHE/build" GOTOOLCHAIN=local
  export GOFLAGS=-mod=mod CGO_ENABLED=0 GOMAXPROCS=1
  mkdir -p "$GOMODCACHE" "$GOCACHE" "$BIN"
  mod="$GOROOT_CACHE/build-module-$K8S_VERSION"
  sv=$(staging_version "$K8S_VERSION")
  if [ ! -f "$mod/go.sum" ]; then
    log "preparing the build module for k8s.io/kubernetes $K8S_VERSION (staging modules at $sv)"
    rm -rf "$mod"; mkdir -p "$mod"
    go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
    upstream="$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
    gover=$(awk '$1 == "go" {print $2; exit}' "$upstream")
    {
      echo "module ferryman.local/k8sbuild"
      echo
      echo "go $gover"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      echo "replace ("
      awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print "\t" $1 " => " $1 " '"$sv"'"}' "$upstream"
      echo ")"
    } > "$mod/go.mod"
    cat > "$mod/tools.go" <<'GO'
//go:build tools

// Package k8sbuild only names the Kubernetes commands ferryman's lab builds.
package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    start=$(date +%s)
    (cd "$mod" && nice -n 19 go mod tidy)
    echo "$(date -u +%FT%TZ) go-mod-tidy $(($(date +%s) - start))s" >> "$BIN/build-times"
  fi
  # The version the binaries report (kubelet and the API server compare versions).
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  pkg=k8s.io/component-base/version
  cgo=k8s.io/client-go/pkg/version
  ld="-s -w"
  for p in $pkg $cgo; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for b in "${missing[@]}"; do
    log "building $b $K8S_VERSION (one core, niced; a cold build takes a while)"
    start=$(date +%s)
    (cd "$mod" && nice -n 19 go build -p 1 -trimpath -ldflags "$ld" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$BIN/$b.tmp" "$BIN/$b"
    end=$(date +%s)
    echo "$(date -u +%FT%TZ) $b $((end - start))s" >> "$BIN/build-times"
    log "$b built in $((end - start)) s"
  done
fi
}

build_k8s

cver=$("$PREFIX/usr/bin/containerd" --version | awk '{print $3}')
case "$cver" in
  2.1.*|2.2.*|2.3.*) ;;
  *) echo "k8s build: containerd $cver from sid; the lab needs 2.1 or newer (CRI restore from a checkpoint image)" >&2; exit 1 ;;
esac

log "kubelet:        $BIN/kubelet ($("$BIN/kubelet" --version))"
log "kube-apiserver: $BIN/kube-apiserver ($("$BIN/kube-apiserver" --version))"
if [ -x "$BIN/kubectl" ]; then log "kubectl:        $BIN/kubectl ($(version_of kubectl | head -1))"; fi
log "etcd:           $PREFIX/usr/bin/etcd ($("$PREFIX/usr/bin/etcd" --version | head -1))"
log "registry:       $PREFIX/usr/bin/docker-registry ($("$PREFIX/usr/bin/docker-registry" --version 2>&1 | head -1))"
log "containerd:     $PREFIX/usr/bin/containerd ($cver)"
log "CNI plugins:    $PREFIX/usr/lib/cni"
log "done"
