#!/usr/bin/env bash
# Unpacks a Debian release's own CRIU into a private prefix, as root, for lab hosts that
# run it instead of the lab's CRIU 4.2 (CRIU before 4.2 takes the copy route: see
# core/engine/restore.py):
#
#   12  Debian 12's 3.17.1 -> /opt/ferryman/criu-3.17, for VM-lab guests
#       (`ferryman lab up --vm --criu 3.17`): it fails `criu check` on this machine's
#       kernel. Its libraries Debian 12 lacks (libnet1, libnftables1, libprotobuf-c1) go
#       into the prefix; a wrapper runs it with them.
#   13  Debian 13's 4.1.1 -> /opt/ferryman/criu-4.1, for namespace-lab hosts
#       (tests/lab/test_criu_versions.py). Read from trixie through a private sources
#       folder, lists folder and cache (the system's apt state is never touched), and run
#       through the loader and libraries of the lab's CRIU prefix (install-deps.sh).
#
# Nothing is put on this machine's PATH. The .debs are cached under $CACHE and reused.
#
#   lab/setup/install-criu-debian.sh 12|13           install (or check), print the version
#   lab/setup/install-criu-debian.sh 12|13 --check   only check; exit 1 if not installed
set -euo pipefail

REL=${1:-}
case "$REL" in
  12) WANT=3.17.1 PREFIX=/opt/ferryman/criu-3.17 SUITE="" PKGS=(criu libnet1 libnftables1 libprotobuf-c1) ;;
  13) WANT=4.1.1 PREFIX=/opt/ferryman/criu-4.1 SUITE=trixie PKGS=(criu libcompel1 libnet1) ;;
  *) echo "usage: $0 12|13 [--check]" >&2; exit 2 ;;
esac
CACHE=/var/cache/ferryman/criu-$WANT
WRAPPER="$PREFIX/criu"
LAB_CRIU=${FERRYMAN_CRIU_PREFIX:-/opt/ferryman/criu}

log() { printf 'install-criu-debian: %s\n' "$*"; }
die() { printf 'install-criu-debian: %s\n' "$*" >&2; exit 1; }
ok() { [ -x "$WRAPPER" ] && "$WRAPPER" --version 2>/dev/null | grep -q "Version: $WANT\$"; }

if [ "${2:-}" = --check ]; then ok; exit; fi
if ok; then log "Debian $REL's CRIU $WANT at $WRAPPER"; exit 0; fi
[ "$(id -u)" = 0 ] || die "needs root"

mkdir -p "$CACHE"
if ! ls "$CACHE"/criu_"$WANT"-*_amd64.deb >/dev/null 2>&1; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if [ -n "$SUITE" ]; then
    mkdir -p "$work/parts" "$work/lists/partial" "$work/cache/archives/partial"
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "${FERRYMAN_DEBIAN_MIRROR:-http://deb.debian.org/debian}" "$SUITE" > "$work/parts/$SUITE.sources"
    opts=(-o Dir::State::Lists="$work/lists" -o Dir::Etc::SourceList=/dev/null
          -o Dir::Etc::SourceParts="$work/parts" -o Dir::Cache="$work/cache")
    apt-get "${opts[@]}" update -qq >/dev/null 2>&1 || die "cannot read Debian $SUITE's package lists"
  else
    opts=()
  fi
  cand=$(apt-cache "${opts[@]}" policy criu 2>/dev/null | awk '/Candidate:/ {print $2}')
  case "$cand" in
    "$WANT"-*) ;;
    *) die "Debian $REL's apt offers criu ${cand:-none} here, not $WANT" ;;
  esac
  log "downloading Debian $REL's criu $cand and its libraries into $CACHE"
  (cd "$CACHE" && apt-get "${opts[@]}" download "${PKGS[@]}" >/dev/null 2>&1) \
    || die "apt-get download ${PKGS[*]} failed"
fi

rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new"
for p in "${PKGS[@]}"; do
  deb=$(ls "$CACHE"/"${p}"_*_amd64.deb 2>/dev/null | sort | tail -1)
  [ -n "$deb" ] || die "no cached .deb for $p in $CACHE"
  dpkg -x "$deb" "$PREFIX.new"
done
L="$PREFIX/usr/lib/x86_64-linux-gnu:$PREFIX/lib/x86_64-linux-gnu"
if [ "$REL" = 12 ]; then
  run="LD_LIBRARY_PATH=$L\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} exec $PREFIX/usr/sbin/criu \"\$@\""
else
  loader="$LAB_CRIU/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
  [ -x "$loader" ] || die "the lab's CRIU prefix ($LAB_CRIU) is missing: run lab/setup/install-deps.sh first"
  run="exec $loader --library-path $L:$LAB_CRIU/usr/lib/x86_64-linux-gnu:$LAB_CRIU/lib/x86_64-linux-gnu $PREFIX/usr/sbin/criu \"\$@\""
fi
printf '#!/bin/sh\n# Debian %s'"'"'s CRIU %s from %s (lab/setup/install-criu-debian.sh)\n%s\n' \
  "$REL" "$WANT" "$PREFIX" "$run" > "$PREFIX.new/criu"
chmod 755 "$PREFIX.new/criu"
rm -rf "$PREFIX"
mv "$PREFIX.new" "$PREFIX"
ok || die "the wrapper does not run: $("$WRAPPER" --version 2>&1 | head -3)"
log "Debian $REL's CRIU $WANT at $WRAPPER"
