#!/usr/bin/env bash
# A PostgreSQL primary and an asynchronous streaming replica of it on this machine, for
# `credits-bench --scenarios replica` (docs/scaling.md, "Read replicas"). The machine's shared
# server on 5432 is not touched: both live in $CREDITS_REPLICA_DIR (default
# /tmp/credits-replica), on ports 5440 and 5441, with trust authentication on 127.0.0.1.
#
#   bench/replica.sh start   # initdb, start the primary, pg_basebackup the replica, start it
#   bench/replica.sh stop    # stop both and remove the directory
#
# As root (CI, this machine) the PostgreSQL binaries run as the `postgres` user, as the tests'
# private servers do (tests/support/private_pg.rs).
set -euo pipefail
dir=${CREDITS_REPLICA_DIR:-/tmp/credits-replica}
bin=${CREDITS_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
primary_port=${CREDITS_PRIMARY_PORT:-5440}
replica_port=${CREDITS_REPLICA_PORT:-5441}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; fi
    as_postgres "$bin/initdb" -D "$dir/primary" -U postgres --auth=trust >/dev/null
    cat >>"$dir/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $primary_port
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 4
max_connections = 200
CONF
    echo "host replication postgres 127.0.0.1/32 trust" >>"$dir/primary/pg_hba.conf"
    as_postgres "$bin/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null
    as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$dir/replica" -R -X stream
    # The copied configuration names the primary's port; the last setting wins.
    echo "port = $replica_port" >>"$dir/replica/postgresql.conf"
    as_postgres "$bin/pg_ctl" -D "$dir/replica" -l "$dir/replica.log" -w start >/dev/null
    echo "primary: postgres://postgres@127.0.0.1:$primary_port/postgres"
    echo "replica: postgres://postgres@127.0.0.1:$replica_port/postgres"
    ;;
stop)
    for server in replica primary; do
        if [ -d "$dir/$server" ]; then as_postgres "$bin/pg_ctl" -D "$dir/$server" -m fast -w stop >/dev/null || true; fi
    done
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
