#!/usr/bin/env bash
# Installs what ferryman's lab and tests need on a bare Debian 12 machine, as root.
# Idempotent: a second run only checks.
#   - Debian packages: docker.io (dockerd, containerd, runc), openssh, iproute2,
#     iptables, busybox-static (the lab image), gcc (the workload), qemu + kernel
#     pieces for the soft-dirty guest lab.
#   - CRIU 4.2.x from Debian sid, unpacked into a private prefix (never installed
#     over the system's libc) and run through its own loader by a wrapper at
#     /usr/local/sbin/criu, so runc (and so Docker) finds it.
#   - Debian 12's own CRIU 3.17.1 and Debian 13's 4.1.1 in /opt/ferryman/criu-3.17 and
#     criu-4.1 (install-criu-debian.sh), for lab hosts that run them.
#   - Docker 28.5.2 with containerd 2.1 and runc 1.3 (lab hosts made with
#     `ferryman lab up --engine 28`), unpacked into /opt/ferryman/engine-28 by
#     install-engine28.sh, its .debs cached in /var/cache/ferryman/engine-28.
set -euo pipefail

PREFIX=${FERRYMAN_CRIU_PREFIX:-/opt/ferryman/criu}
WRAPPER=/usr/local/sbin/criu
STAMP=/var/lib/ferryman/deps-v2

[ "$(id -u)" = 0 ] || { echo "install-deps: needs root (it installs Debian packages)" >&2; exit 1; }

log() { printf 'install-deps: %s\n' "$*"; }

if [ ! -f "$STAMP" ]; then
  log "installing Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    docker.io containerd runc openssh-server openssh-client iproute2 iptables \
    busybox-static gcc libc6-dev procps psmisc util-linux kmod ca-certificates \
    tmux debootstrap >/dev/null
  # The real-application image compiles a small Java service (lab/apps_image.py).
  command -v javac >/dev/null || apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless >/dev/null
  # Debian's own criu (3.17) fails on recent kernels; make sure it is not there.
  if dpkg -s criu >/dev/null 2>&1; then apt-get remove -y -qq criu >/dev/null; fi
  systemctl disable --now docker.service docker.socket containerd.service >/dev/null 2>&1 || true
  mkdir -p "$(dirname "$STAMP")"; touch "$STAMP"
fi

criu_ok() { [ -x "$WRAPPER" ] && "$WRAPPER" --version 2>/dev/null | grep -qE 'Version: 4\.([2-9]|[1-9][0-9])'; }

if ! criu_ok; then
  log "fetching CRIU 4.2 from Debian sid into $PREFIX"
  work=$(mktemp -d)
  src=/etc/apt/sources.list.d/ferryman-sid.sources
  lists=$(mktemp -d)
  trap 'rm -rf "$work" "$lists" "$src"' EXIT
  cat > "$src" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  # A private list directory: the system's package lists never see sid.
  opts=(-o Dir::State::Lists="$lists" -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/dev/null
        -o APT::Default-Release=sid)
  sidlist=$(mktemp)
  cp "$src" "$sidlist.sources"
  opts=(-o Dir::State::Lists="$lists" -o Dir::Etc::SourceList=/dev/null
        -o Dir::Etc::SourceParts="$(dirname "$sidlist")/ferryman-sid-parts")
  mkdir -p "$(dirname "$sidlist")/ferryman-sid-parts"
  cp "$src" "$(dirname "$sidlist")/ferryman-sid-parts/sid.sources"
  rm -f "$src"
  apt-get "${opts[@]}" update -qq
  pkgs=(criu libcompel1 libc6 libprotobuf-c1 libnl-3-200 libnet9 libgnutls30t64 libnftables1
        libbsd0 libcap2 libuuid1 libdrm2 libnettle8t64 libhogweed6t64 libunistring5 libidn2-0
        libtasn1-6 libp11-kit0 libgmp10 libffi8 libjansson4 libmnl0 libnftnl11 libxtables12
        libedit2 libmd0 libtinfo6 libzstd1 libgcc-s1 python3-pycriu python3-protobuf crit)
  (cd "$work" && apt-get "${opts[@]}" download "${pkgs[@]}" >/dev/null 2>&1) || \
  (cd "$work" && apt-get "${opts[@]}" download "${pkgs[@]:0:29}" >/dev/null)
  rm -rf "$(dirname "$sidlist")/ferryman-sid-parts" "$sidlist" "$sidlist.sources"
  rm -rf "$PREFIX"; mkdir -p "$PREFIX"
  for deb in "$work"/*.deb; do dpkg -x "$deb" "$PREFIX"; done
  L="$PREFIX/usr/lib/x86_64-linux-gnu:$PREFIX/lib/x86_64-linux-gnu"
  cat > "$WRAPPER" <<WRAP
#!/bin/sh
# CRIU from Debian sid, run through its own loader (installed by ferryman's install-deps.sh)
exec $PREFIX/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $L $PREFIX/usr/sbin/criu "\$@"
WRAP
  chmod 755 "$WRAPPER"
  criu_ok || { echo "install-deps: the CRIU wrapper does not run: $("$WRAPPER" --version 2>&1 | head -3)" >&2; exit 1; }
fi
log "CRIU: $("$WRAPPER" --version | head -1)"

# The soft-dirty VM lab (`ferryman lab up --vm`): QEMU, and Debian's 6.1 kernel unpacked
# into a private prefix (never installed over this machine's boot): its vmlinuz boots the
# guests, its modules are loaded in them.
VMKERNEL=${FERRYMAN_VMKERNEL_PREFIX:-/opt/ferryman/vmkernel}
if ! command -v qemu-system-x86_64 >/dev/null; then
  log "installing qemu-system-x86"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
  }
fi
if ! ls "$VMKERNEL"/boot/vmlinuz-* >/dev/null 2>&1 || [ ! -f "$VMKERNEL/.complete" ]; then
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1/ {print $2; exit}')
  if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1/ {print $2; exit}')
  fi
  [ -n "$kpkg" ] || { echo "install-deps: no linux-image-6.1.0-*-amd64 package found" >&2; exit 1; }
  log "unpacking $kpkg into $VMKERNEL (not installed as this machine's kernel)"
  kwork=$(mktemp -d)
  (cd "$kwork" && apt-get download "$kpkg" >/dev/null 2>&1)
  rm -rf "$VMKERNEL"; mkdir -p "$VMKERNEL"
  dpkg -x "$kwork"/*.deb "$VMKERNEL"
  rm -rf "$kwork"
  kver=$(basename "$(ls -d "$VMKERNEL"/lib/modules/*)")
  depmod -b "$VMKERNEL" "$kver"
  grep -q '^CONFIG_MEM_SOFT_DIRTY=y' "$VMKERNEL/boot/config-$kver" || \
    { echo "install-deps: $kpkg has no CONFIG_MEM_SOFT_DIRTY" >&2; exit 1; }
  echo "$kpkg" > "$VMKERNEL/.complete"
fi
log "VM kernel: $(cat "$VMKERNEL/.complete")"

# Debian 12's and Debian 13's own CRIU (3.17.1, 4.1.1) in private prefixes, for lab hosts
# that run them (the copy route); never on this machine's PATH.
for rel in 12 13; do
  bash "$(dirname "$0")/install-criu-debian.sh" "$rel" | sed 's/^install-criu-debian: /install-deps: /'
done

# Docker 28 in its own prefix (after CRIU: its runc uses the libc CRIU's prefix holds).
bash "$(dirname "$0")/install-engine28.sh" | sed 's/^install-engine28: /install-deps: engine 28: /'
log "done"
