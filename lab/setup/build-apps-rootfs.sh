#!/usr/bin/env bash
# Builds the real-application lab image's root file system into a folder, from Debian's
# packages only (lab/apps_image.py calls it; it adds the services and makes the tar).
#   build-apps-rootfs.sh FOLDER MIRROR PACKAGE...
# debootstrap --variant=minbase, then the packages with apt inside the folder (no
# recommends, no service started, no PostgreSQL cluster made), then trimmed: docs, man
# pages, translations, apt lists and caches, logs. Run as root; the folder must not exist.
set -euo pipefail

root=$1; mirror=$2; shift 2
[ "$(id -u)" = 0 ] || { echo "build-apps-rootfs: needs root (debootstrap, chroot)" >&2; exit 1; }
[ ! -e "$root" ] || { echo "build-apps-rootfs: $root exists" >&2; exit 1; }
[ $# -gt 0 ] || { echo "build-apps-rootfs: no packages" >&2; exit 1; }

log() { printf 'build-apps-rootfs: %s\n' "$*" >&2; }

# Everything in a mount namespace of its own: what debootstrap and the maintainer scripts
# mount inside the folder (/proc, /dev) goes away with this script, even when it is killed,
# so removing the folder afterwards never walks into a mounted /proc.
if [ -z "${FERRYMAN_BUILD_UNSHARED:-}" ]; then
  exec unshare --mount --propagation private env FERRYMAN_BUILD_UNSHARED=1 bash "$0" "$root" "$mirror" "$@"
fi

log "debootstrap --variant=minbase bookworm $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
  || { tail -20 "$root.debootstrap.log" >&2; exit 1; }
rm -f "$root.debootstrap.log"

# No daemon starts while packages install; no default PostgreSQL cluster is made (the
# container makes its own in its volume on first start).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/etc/postgresql-common"
echo "create_main_cluster = false" >"$root/etc/postgresql-common/createcluster.conf"
# Nothing of docs, man pages or translations is unpacked at all.
cat >"$root/etc/dpkg/dpkg.cfg.d/ferryman-nodoc" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
CFG
cat >"$root/etc/apt/apt.conf.d/ferryman" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Dpkg::Options { "--force-confold"; };
CFG

log "apt-get install $*"
# /proc and /dev for the maintainer scripts (ca-certificates-java runs java).
env ROOT="$root" sh -ec '
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  mount --bind /dev "$ROOT/dev"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
  chroot "$ROOT" apt-get update -qq
  chroot "$ROOT" apt-get install -y -qq "$@" >/dev/null
  chroot "$ROOT" apt-get clean
' sh "$@"

umount "$root/dev" 2>/dev/null || true
umount "$root/proc" 2>/dev/null || true
log "trimming"
rm -f "$root/usr/sbin/policy-rc.d"
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/lintian \
  "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/tmp/* "$root"/root/.cache
find "$root/var/log" -type f -delete
# PostgreSQL's JIT: llvmjit.so is the only user of libLLVM (and libLLVM of libz3), about
# 160 MB; without the provider PostgreSQL runs without JIT (jit = off is set too), and
# nothing else loads them. The locale sources go too (nobody runs locale-gen in there).
rm -f "$root"/usr/lib/postgresql/15/lib/llvmjit.so "$root"/usr/lib/postgresql/15/lib/llvmjit_types.bc \
  "$root"/usr/lib/x86_64-linux-gnu/libLLVM-14.so* "$root"/usr/lib/x86_64-linux-gnu/libz3.so*
rm -rf "$root"/usr/lib/postgresql/15/lib/bitcode "$root"/usr/share/i18n/charmaps "$root"/usr/share/i18n/locales
find "$root" -xdev -name '__pycache__' -type d -prune -exec rm -rf {} +
: >"$root/etc/resolv.conf"
: >"$root/etc/machine-id"
log "done: $(du -sh --apparent-size "$root" | cut -f1)"
