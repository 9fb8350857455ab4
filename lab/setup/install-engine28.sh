#!/usr/bin/env bash
# Unpacks Docker 28 (Debian sid's docker.io + docker-cli, containerd 2.1, runc 1.3) into a
# private prefix, as root, for lab hosts that run a current engine beside Debian 12's
# own 20.10. Nothing is installed over the system's packages and the system's apt state
# (sources, lists, cache, dpkg status) is never touched: sid is read through a private
# sources folder, lists folder and cache folder that exist only while this runs.
#
#   lab/setup/install-engine28.sh            install (or check) and print the versions
#   lab/setup/install-engine28.sh --check    only check; exit 1 if not installed
#   lab/setup/install-engine28.sh --print-env
#                                            print the PATH a daemon of the prefix needs
#
# Idempotent: the .debs are cached under $CACHE/<package>_<version>_amd64.deb and reused;
# the prefix is rebuilt only when its stamp does not name the wanted versions.
#
# runc 1.3 needs glibc >= 2.38 (bookworm has 2.36): the copy in the prefix gets sid's
# loader and libraries (already unpacked for CRIU by install-deps.sh, which must have run)
# with patchelf. dockerd, docker, containerd and its shim run on bookworm as they are.
#
# Environment (defaults in brackets):
#   FERRYMAN_ENGINE28_PREFIX  [/opt/ferryman/engine-28]
#   FERRYMAN_CRIU_PREFIX      [/opt/ferryman/criu]
#   FERRYMAN_ENGINE28_CACHE   [/var/cache/ferryman/engine-28]
#   FERRYMAN_ENGINE28_DOCKER / _CONTAINERD / _RUNC / _TINI: the upstream versions wanted
#     [28.5.2 / 2.1.9 / 1.3.6 / 0.19.0]; a cached .deb of that upstream version is used,
#     else sid's current one if it is that version, else the script stops and says what
#     sid has now.
set -euo pipefail

PREFIX=${FERRYMAN_ENGINE28_PREFIX:-/opt/ferryman/engine-28}
CRIU_PREFIX=${FERRYMAN_CRIU_PREFIX:-/opt/ferryman/criu}
CACHE=${FERRYMAN_ENGINE28_CACHE:-/var/cache/ferryman/engine-28}
MIRROR=${FERRYMAN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
declare -A WANT=(
  [docker.io]=${FERRYMAN_ENGINE28_DOCKER:-28.5.2}
  [docker-cli]=${FERRYMAN_ENGINE28_DOCKER:-28.5.2}
  [containerd]=${FERRYMAN_ENGINE28_CONTAINERD:-2.1.9}
  [runc]=${FERRYMAN_ENGINE28_RUNC:-1.3.6}
  [tini-static]=${FERRYMAN_ENGINE28_TINI:-0.19.0}
)
PKGS=(docker.io docker-cli containerd runc tini-static)
LIBDIR="$CRIU_PREFIX/usr/lib/x86_64-linux-gnu"
LOADER="$LIBDIR/ld-linux-x86-64.so.2"
RPATH="$LIBDIR:$CRIU_PREFIX/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu"
STAMP="$PREFIX/.complete"

log() { printf 'install-engine28: %s\n' "$*"; }
die() { printf 'install-engine28: %s\n' "$*" >&2; exit 1; }

stamp_text() {
  local p
  for p in "${PKGS[@]}"; do printf '%s %s\n' "$p" "${WANT[$p]}"; done
  printf 'criu-prefix %s\n' "$CRIU_PREFIX"
}

# The PATH a daemon from the prefix needs: the CRIU wrapper first (runc finds `criu` on
# the PATH it inherits from dockerd -> containerd -> shim), then the prefix, then the system.
engine_path() {
  printf '/usr/local/sbin:%s/usr/sbin:%s/usr/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' "$PREFIX" "$PREFIX"
}

installed_ok() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_text)" ] || return 1
  "$PREFIX/usr/sbin/runc" --version >/dev/null 2>&1 || return 1
  "$PREFIX/usr/sbin/dockerd" --version >/dev/null 2>&1 || return 1
  "$PREFIX/usr/bin/containerd" --version >/dev/null 2>&1 || return 1
}

print_versions() {
  log "prefix: $PREFIX"
  log "dockerd:    $("$PREFIX/usr/sbin/dockerd" --version)"
  log "docker:     $("$PREFIX/usr/bin/docker" --version)"
  log "containerd: $("$PREFIX/usr/bin/containerd" --version)"
  log "runc:       $("$PREFIX/usr/sbin/runc" --version | tr '\n' ' ')"
  log "criu:       $(PATH="$(engine_path)" criu --version | head -1)"
  log "daemon PATH: $(engine_path)"
}

case "${1:-}" in
  --print-env) engine_path; exit 0 ;;
  --check) installed_ok && { print_versions; exit 0; }; log "not installed in $PREFIX"; exit 1 ;;
  "") ;;
  *) die "usage: $0 [--check|--print-env]" ;;
esac

[ "$(id -u)" = 0 ] || die "needs root (it writes $PREFIX and $CACHE)"
[ -x "$LOADER" ] || die "no sid loader at $LOADER: run lab/setup/install-deps.sh first (it unpacks CRIU's libc there)"

if installed_ok; then print_versions; exit 0; fi

# --- the .debs: cached by version, else fetched from sid ----------------------------------
cached() {  # the cached .deb of package $1 at upstream version $2, if any
  local f
  for f in "$CACHE/${1}_${2}"[+~-]*_amd64.deb "$CACHE/${1}_${2}_amd64.deb" \
           "$CACHE/${1}_"*"%3a${2}"[+~-]*_amd64.deb; do
    [ -f "$f" ] && { printf '%s\n' "$f"; return 0; }
  done
  return 1
}

missing=()
for p in "${PKGS[@]}"; do cached "$p" "${WANT[$p]}" >/dev/null || missing+=("$p"); done

if [ "${#missing[@]}" -gt 0 ]; then
  log "fetching ${missing[*]} from Debian sid (private apt folders; the system's apt state is untouched)"
  apt_tmp=$(mktemp -d /tmp/ferryman-engine28-apt.XXXXXX)
  trap 'rm -rf "$apt_tmp"' EXIT
  mkdir -p "$apt_tmp/parts" "$apt_tmp/lists/partial" "$apt_tmp/cache/archives/partial" "$apt_tmp/dl"
  cat > "$apt_tmp/parts/sid.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  : > "$apt_tmp/status"
  opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt_tmp/parts"
        -o Dir::State::Lists="$apt_tmp/lists" -o Dir::Cache="$apt_tmp/cache"
        -o Dir::State::status="$apt_tmp/status" -o APT::Sandbox::User=root
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::CNF::DefaultEnabled=false)
  apt-get "${opts[@]}" update -qq >/dev/null || die "apt-get update against sid failed"
  for p in "${missing[@]}"; do
    cand=$(apt-cache "${opts[@]}" policy "$p" | awk '/Candidate:/ {print $2}')
    up=${cand#*:}; up=${up%%[+~-]*}
    [ "$up" = "${WANT[$p]}" ] || die "sid has $p $cand, not ${WANT[$p]}: set FERRYMAN_ENGINE28_* to the version wanted, or put ${p}_${WANT[$p]}*_amd64.deb into $CACHE"
    (cd "$apt_tmp/dl" && apt-get "${opts[@]}" download "$p=$cand" >/dev/null) || die "apt-get download $p=$cand failed"
  done
  mkdir -p "$CACHE"
  mv "$apt_tmp"/dl/*.deb "$CACHE"/
  rm -rf "$apt_tmp"; trap - EXIT
fi

# --- the prefix ---------------------------------------------------------------------------
command -v patchelf >/dev/null || {
  log "installing patchelf (Debian 12)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patchelf >/dev/null 2>&1 || {
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patchelf >/dev/null; }
}

case "$PREFIX" in /|/usr|/usr/*|/bin|/sbin|/lib*|/etc*) die "refusing prefix $PREFIX (it would lie over the system's files)";; esac
staging="$PREFIX.staging"
rm -rf "$staging"; mkdir -p "$staging"
for p in "${PKGS[@]}"; do
  deb=$(cached "$p" "${WANT[$p]}") || die "no cached .deb for $p ${WANT[$p]} in $CACHE"
  log "unpacking $(basename "$deb")"
  dpkg -x "$deb" "$staging"
done
# runc: sid's loader and libraries (libc 2.38+, libseccomp) from CRIU's prefix, system last.
patchelf --set-interpreter "$LOADER" --set-rpath "$RPATH" "$staging/usr/sbin/runc"
"$staging/usr/sbin/runc" --version >/dev/null || die "the patched runc does not run: $("$staging/usr/sbin/runc" --version 2>&1 | head -3)"
# docker-init (`docker run --init`), as dockerd looks it up on its PATH.
[ -e "$staging/usr/bin/docker-init" ] || ln -s tini-static "$staging/usr/bin/docker-init"
stamp_text > "$staging/.complete"
rm -rf "$PREFIX"; mv "$staging" "$PREFIX"
installed_ok || die "installed, but the binaries in $PREFIX do not run"
print_versions
