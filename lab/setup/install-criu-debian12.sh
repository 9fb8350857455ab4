#!/usr/bin/env bash
# Unpacks Debian 12's own CRIU (3.17.1, the version a Debian 12 host's `apt install criu`
# gives) into a private prefix, as root, for VM-lab guests that run it instead of the
# lab's CRIU 4.2 (`ferryman lab up --vm --criu 3.17`). Nothing is installed on this
# machine's PATH: Debian's 3.17.1 fails `criu check` on recent kernels, and runc would find
# it before the lab's CRIU. Its libraries that Debian 12 does not have already (libnet1,
# libnftables1, libprotobuf-c1) go into the same prefix; a wrapper runs it with them.
#
#   lab/setup/install-criu-debian12.sh           install (or check) and print the version
#   lab/setup/install-criu-debian12.sh --check   only check; exit 1 if not installed
#
# The .debs are cached under $CACHE and reused.
set -euo pipefail

PREFIX=${FERRYMAN_CRIU317_PREFIX:-/opt/ferryman/criu-3.17}
CACHE=${FERRYMAN_CRIU317_CACHE:-/var/cache/ferryman/criu-3.17}
WANT=${FERRYMAN_CRIU317_VERSION:-3.17.1}
PKGS=(criu libnet1 libnftables1 libprotobuf-c1)
WRAPPER="$PREFIX/criu"

log() { printf 'install-criu-debian12: %s\n' "$*"; }
die() { printf 'install-criu-debian12: %s\n' "$*" >&2; exit 1; }
ok() { [ -x "$WRAPPER" ] && "$WRAPPER" --version 2>/dev/null | grep -q "Version: $WANT\$"; }

if [ "${1:-}" = --check ]; then ok; exit; fi
if ok; then log "CRIU $WANT at $WRAPPER"; exit 0; fi
[ "$(id -u)" = 0 ] || die "needs root"

mkdir -p "$CACHE"
have=$(ls "$CACHE"/criu_"$WANT"-*_amd64.deb 2>/dev/null | head -1 || true)
if [ -z "$have" ]; then
  cand=$(apt-cache policy criu 2>/dev/null | awk '/Candidate:/ {print $2}')
  case "$cand" in
    "$WANT"-*) ;;
    *) apt-get update -qq; cand=$(apt-cache policy criu | awk '/Candidate:/ {print $2}') ;;
  esac
  case "$cand" in
    "$WANT"-*) ;;
    *) die "this machine's apt offers criu ${cand:-none}, not $WANT (a Debian 12 source is needed)" ;;
  esac
  log "downloading criu $cand and its libraries into $CACHE"
  (cd "$CACHE" && apt-get download "${PKGS[@]}" >/dev/null 2>&1) || die "apt-get download ${PKGS[*]} failed"
fi
rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new"
for p in "${PKGS[@]}"; do
  deb=$(ls "$CACHE"/"${p}"_*_amd64.deb 2>/dev/null | sort | tail -1)
  [ -n "$deb" ] || die "no cached .deb for $p in $CACHE"
  dpkg -x "$deb" "$PREFIX.new"
done
L="$PREFIX/usr/lib/x86_64-linux-gnu:$PREFIX/lib/x86_64-linux-gnu"
cat > "$PREFIX.new/criu" <<WRAP
#!/bin/sh
# Debian 12's CRIU $WANT from $PREFIX (lab/setup/install-criu-debian12.sh)
LD_LIBRARY_PATH=$L\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} exec $PREFIX/usr/sbin/criu "\$@"
WRAP
chmod 755 "$PREFIX.new/criu"
rm -rf "$PREFIX"
mv "$PREFIX.new" "$PREFIX"
ok || die "the wrapper does not run: $("$WRAPPER" --version 2>&1 | head -3)"
log "CRIU $WANT at $WRAPPER"
