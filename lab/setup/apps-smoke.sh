#!/usr/bin/env bash
# Checks each application of the apps image starts from its rootfs tar, without any lab:
# the tar is unpacked into a scratch folder and each application runs there as PID 1's
# child in its own mount, PID and network namespaces (`unshare --mount --pid --net
# --fork --kill-child`, `chroot`), answering on that namespace's loopback only, bounded in
# time; leaving the namespace kills whatever it started. Prints, per application, what
# answered and as which user its processes run.
#   apps-smoke.sh TAR [APP ...]      APP: redis nginx jvm python postgres client
set -euo pipefail

if [ "${1:-}" = --inside ]; then
  R=$2; app=$3
  mount --make-rprivate /
  mount -t proc proc "$R/proc"
  mkdir -p "$R/dev/shm" && mount -t tmpfs -o size=64m tmpfs "$R/dev/shm"
  ip link set lo up
  c() { chroot "$R" "$@"; }
  users() { c busybox ps -o user,args | awk 'NR > 1 && !/busybox ps|apps-smoke.sh|^ *root +(sort|uniq|sed|awk)/ {print $1": "substr($0, index($0,$2))}' | sort | uniq -c | sed 's/^ */    /'; }
  upto() { for _ in $(seq 1 "$1"); do if eval "$2" >/dev/null 2>&1; then return 0; fi; sleep 0.5; done; echo "  $app: $2: no answer" >&2; return 1; }
  case $app in
    redis)
      c redis-server --save '' --appendonly no --bind 0.0.0.0 --protected-mode no --port 16379 --dir /data >$R/tmp/smoke-redis.log 2>&1 &
      upto 40 'c redis-cli -p 16379 ping | grep -q PONG'
      c sh -c 'python3 /opt/ferryman/client.py redis-load 20000 256 | redis-cli -p 16379 --pipe' | tail -1 | sed 's/^/  load: /'
      echo "  DBSIZE $(c redis-cli -p 16379 DBSIZE), run_id $(c redis-cli -p 16379 INFO server | awk -F: '/^run_id/ {print $2}' | tr -d '\r')"
      ;;
    nginx)
      c nginx -g 'daemon off;' >$R/tmp/smoke-nginx.log 2>&1 &
      upto 40 'c curl -sf http://127.0.0.1/'
      echo "  GET /: $(c curl -sf http://127.0.0.1/), /big.txt: $(c curl -sf http://127.0.0.1/big.txt | wc -c) bytes, master pid $(c cat /run/nginx.pid)"
      echo "  /status: $(c curl -sf http://127.0.0.1/status | tr '\n' ' ')"
      ;;
    jvm)
      c java -Xmx64m -cp /opt/ferryman Counter 18081 >$R/tmp/smoke-jvm.log 2>&1 &
      upto 60 'c curl -sf http://127.0.0.1:18081/'
      a=$(c curl -sf http://127.0.0.1:18081/); sleep 1; b=$(c curl -sf http://127.0.0.1:18081/)
      echo "  GET / twice, 1 s apart: $a -> $b"
      echo "  stdout: $(grep -c '^hb ' $R/tmp/smoke-jvm.log) heartbeat lines, last: $(grep '^hb ' $R/tmp/smoke-jvm.log | tail -1)"
      ;;
    python)
      c python3 /opt/ferryman/counter_service.py 18082 4 >$R/tmp/smoke-python.log 2>&1 &
      upto 40 'c curl -sf http://127.0.0.1:18082/'
      a=$(c curl -sf http://127.0.0.1:18082/); sleep 1; b=$(c curl -sf http://127.0.0.1:18082/)
      echo "  GET / twice, 1 s apart: $a -> $b"
      echo "  threads of the service: $(for p in "$R"/proc/[0-9]*; do grep -q counter_service "$p/cmdline" 2>/dev/null && ls "$p/task" | wc -l; done | head -1)"
      ;;
    postgres)
      echo "  as root: $(c /usr/lib/postgresql/15/bin/postgres -D /tmp 2>&1 | head -1)"
      c /opt/ferryman/pg-start.sh >$R/tmp/smoke-pg.log 2>&1 &
      upto 60 'c psql -h /run/postgresql -U postgres -Atc "SELECT 1"'
      c psql -h 127.0.0.1 -U postgres -Atq -c 'CREATE TABLE rows AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g'
      echo "  over TCP on loopback: $(c psql -h 127.0.0.1 -U postgres -Atc 'SELECT count(*) FROM rows') rows, $(c psql -h 127.0.0.1 -U postgres -Atc 'SELECT version()' | cut -d' ' -f1-2)"
      ;;
    client)
      c redis-server --save '' --port 16379 >/dev/null 2>&1 &
      c python3 -m http.server -d /opt/ferryman 18083 >/dev/null 2>&1 &
      upto 40 'c redis-cli -p 16379 ping | grep -q PONG'
      upto 40 'c curl -sf http://127.0.0.1:18083/'
      timeout 3 chroot "$R" python3 /opt/ferryman/client.py redis-writer 0.2 127.0.0.1:16999 127.0.0.1:16379 >$R/tmp/smoke-writer.log || true
      timeout 2 chroot "$R" python3 /opt/ferryman/client.py http 0.2 http://127.0.0.1:18083/client.py >$R/tmp/smoke-http.log || true
      echo "  redis-writer: $(grep -c '^ok' $R/tmp/smoke-writer.log) acknowledged, last: $(tail -1 $R/tmp/smoke-writer.log); writer:seq = $(c redis-cli -p 16379 GET writer:seq)"
      n=$(c redis-cli -p 16379 GET writer:seq)
      echo "  of w:1..w:$n present: $(c python3 -c 'import sys; sys.path.insert(0, "/opt/ferryman"); import client; print(client.COUNT_SCRIPT)' | xargs -0 -I{} chroot "$R" redis-cli -p 16379 EVAL {} 0 "$n")"
      echo "  DBSIZE and writer:seq at once: $(c redis-cli -p 16379 EVAL "return {redis.call('DBSIZE'), redis.call('GET', 'writer:seq') or '0'}" 0 | tr '\n' ' ')"
      echo "  http: $(grep -c '^ok' $R/tmp/smoke-http.log) answers, last: $(tail -1 $R/tmp/smoke-http.log | cut -c1-60)"
      ;;
    *) echo "unknown app $app" >&2; exit 2 ;;
  esac
  echo "  processes (user: command):"; users
  exit 0
fi

tar=$1; shift
apps=("$@"); [ ${#apps[@]} -gt 0 ] || apps=(redis nginx jvm python postgres client)
scratch=$(mktemp -d /var/tmp/apps-smoke.XXXXXX)
trap 'rm -rf --one-file-system "$scratch"' EXIT
tar -C "$scratch" -xf "$tar"
for app in "${apps[@]}"; do
  echo "$app:"
  timeout -s KILL 150 unshare --mount --pid --net --fork --kill-child \
    bash "$0" --inside "$scratch" "$app" || echo "  $app: FAILED (exit $?)"
done
