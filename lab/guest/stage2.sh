#!/bin/bash
# Stage 2 of a VM lab guest, PID 1 after switch_root into an overlay of this machine's /
# (read-only 9p) under a tmpfs. Sets the guest up as a lab host: its own /proc, /sys,
# /run, cgroup2, the Debian kernel's modules, its address on the lab bridge, a scratch
# disk (/dev/vda) for Docker's data and checkpoint images, sshd and dockerd --experimental.
# Settings come from the kernel command line (fm.host, fm.addr, fm.gw, fm.state, fm.kdir).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "fm-guest: $*" > /dev/console; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
for a in $(cat /proc/cmdline); do
  case "$a" in
    fm.host=*) HOST=${a#*=} ;;
    fm.addr=*) ADDR=${a#*=} ;;
    fm.gw=*) GW=${a#*=} ;;
    fm.state=*) STATE=${a#*=} ;;
    fm.kdir=*) KDIR=${a#*=} ;;
  esac
done
say "$HOST: stage 2 at $(cut -d' ' -f1 /proc/uptime) s"

# Fresh runtime folders: the lower layer is this machine's own /, whose /run, /tmp and
# Docker state must not show through.
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# root's home too: this machine's dotfiles (pyenv and the like) have no business here;
# and /etc/criu, where the migration engine puts runc.conf for the length of a restore on
# this machine or in a guest: each host must see only its own.
for d in /var/lib/docker /var/lib/containerd /etc/docker /etc/criu /root; do
  mkdir -p "$d" && mount -t tmpfs -o mode=700 tmpfs "$d"
done
[ -d /sys/kernel/debug ] && mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr

# The guest kernel's modules, from the unpacked Debian package.
KVER=$(uname -r)
mkdir -p "/lib/modules/$KVER"
mount --bind "$KDIR/lib/modules/$KVER" "/lib/modules/$KVER"
for m in virtio_net virtio_blk ext4 tun bridge br_netfilter veth nf_conntrack xt_conntrack \
  xt_MASQUERADE xt_addrtype nft_compat nft_chain_nat iptable_nat iptable_filter; do
  modprobe -q "$m" || say "$HOST: modprobe $m failed"
done

hostname "$HOST"
echo "$HOST" > /etc/hostname
printf '127.0.0.1 localhost\n%s %s\n' "${ADDR%/*}" "$HOST" > /etc/hosts
ip link set lo up
nic=$(ls /sys/class/net | grep -v '^lo$' | grep -v '^sit\|^tunl\|^ip6\|^docker' | head -1)
ip addr add "$ADDR" dev "$nic"
ip link set "$nic" up
ip route add default via "$GW"
echo 1 > /proc/sys/net/ipv4/ip_forward

# Scratch disk: Docker's data root and the checkpoint images (kept off the guest's RAM).
mkdir -p /srv/ferryman
if [ -b /dev/vda ]; then
  mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 -O ^has_journal /dev/vda \
    && mount -o noatime /dev/vda /srv/ferryman || say "$HOST: scratch disk failed, using RAM"
fi
mkdir -p /srv/ferryman/docker /srv/ferryman/images /run/ferryman/bin /run/docker
echo '{}' > /run/ferryman/daemon.json

mkdir -p /run/sshd && chmod 755 /run/sshd
/usr/sbin/sshd -f "$STATE/sshd_config" -E /run/ferryman/sshd.log || say "$HOST: sshd failed"
say "$HOST: sshd up at $(cut -d' ' -f1 /proc/uptime) s"

# dockerd gives up when its containerd is slow to start (it waits a fixed time, which an
# emulated guest under load can exceed): start it again, up to three times.
start_dockerd() {
  PATH=/run/ferryman/bin:$PATH setsid dockerd --experimental \
    --config-file /run/ferryman/daemon.json \
    --data-root /srv/ferryman/docker --exec-root /run/docker \
    --pidfile /run/docker.pid -H unix:///run/docker.sock \
    --storage-driver overlay2 >> /run/ferryman/dockerd.log 2>&1 < /dev/null &
  echo $!
}
answered=no
for try in 1 2 3; do
  dpid=$(start_dockerd)
  for _ in $(seq 900); do
    docker -H unix:///run/docker.sock version > /dev/null 2>&1 && { answered=yes; break; }
    kill -0 "$dpid" 2>/dev/null || break
    sleep 0.2
  done
  [ "$answered" = yes ] && break
  say "$HOST: dockerd ended before answering (try $try): $(tail -n1 /run/ferryman/dockerd.log)"
  kill "$dpid" 2>/dev/null; pkill -f 'containerd --config /run/docker/containerd' 2>/dev/null
  sleep 1
done
if [ "$answered" = yes ]; then
  say "$HOST: dockerd answers at $(cut -d' ' -f1 /proc/uptime) s"
fi
echo ready > /run/ferryman/ready

# PID 1: reap orphans until the machine is switched off.
trap '' TERM
while :; do
  wait
  sleep 5
done
