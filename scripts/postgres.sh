#!/usr/bin/env bash
# A private PostgreSQL server for tests and examples, in a directory of its own.
#
#   scripts/postgres.sh install             install Debian's postgresql package if missing
#   scripts/postgres.sh start DIR [PORT]    create a cluster in DIR and start it on
#                                           127.0.0.1:PORT (5432); waits until it serves
#   scripts/postgres.sh stop DIR            stop the server started in DIR
#
# The cluster has one role, `squall`, with the password in SQUALL_POSTGRES_PASSWORD
# (default `squall`), owning a database `squall`. It listens on 127.0.0.1 only, with its
# socket in DIR, and asks every connection for the password (scram-sha-256). Run as root,
# the server runs as the `postgres` user, which owns DIR.
set -euo pipefail

bin_dir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [[ -n "$dir" ]] || { echo "PostgreSQL is not installed: run $0 install" >&2; exit 1; }
    echo "$dir"
}

install() {
    # One install at a time: tests that start servers in parallel would race for apt's lock.
    exec 9>"${TMPDIR:-/tmp}/squall-install.lock"
    flock 9
    if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        return 0
    fi
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    echo "installing PostgreSQL (Debian package postgresql)" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq postgresql >/dev/null
}

# Runs a command as the user that owns the cluster.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local dir=$1 port=${2:-5432} bin
    bin=$(bin_dir)
    mkdir -p "$dir"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres "$dir"
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        local password_file="$dir/password"
        printf '%s\n' "${SQUALL_POSTGRES_PASSWORD:-squall}" >"$password_file"
        [[ "$(id -u)" == 0 ]] && chown postgres "$password_file"
        as_owner "$bin/initdb" -D "$dir/data" -U squall --pwfile="$password_file" \
            --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
        rm -f "$password_file"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off" \
        start >/dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
    # The role's own database, created once.
    if ! PGPASSWORD="${SQUALL_POSTGRES_PASSWORD:-squall}" "$bin/psql" -h 127.0.0.1 -p "$port" \
        -U squall -d squall -Atc 'select 1' >/dev/null 2>&1; then
        PGPASSWORD="${SQUALL_POSTGRES_PASSWORD:-squall}" "$bin/createdb" -h 127.0.0.1 \
            -p "$port" -U squall squall
    fi
    head -1 "$dir/data/postmaster.pid"
}

stop() {
    local dir=$1 bin
    bin=$(bin_dir)
    [[ -f "$dir/data/postmaster.pid" ]] || return 0
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
