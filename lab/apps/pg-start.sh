#!/bin/sh
# PID 1 of the lab image's PostgreSQL container. PostgreSQL refuses to run as root (by
# design: postgres exits with '"root" execution of the PostgreSQL server is not
# permitted'), so it runs as the postgres user: on the VM lab only (CRIU on the namespace
# lab cannot dump another user's task, this machine's root lacking CAP_SYS_RESOURCE).
# First start: a cluster in $PGDATA (a volume), open to the lab's clients without a
# password (trust: a lab, not a production setting). Then exec the postmaster.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
BIN=/usr/lib/postgresql/15/bin
export PGDATA
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  setpriv --reuid=postgres --regid=postgres --init-groups \
    "$BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  {
    echo "listen_addresses = '*'"
    echo "unix_socket_directories = '/run/postgresql'"
    echo "logging_collector = off"
    echo "jit = off"  # the image has no JIT provider (libLLVM trimmed away)
  } >>"$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 trust" >>"$PGDATA/pg_hba.conf"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$BIN/postgres" -D "$PGDATA" "$@"
