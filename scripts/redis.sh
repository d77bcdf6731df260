#!/usr/bin/env bash
# A private Redis server for tests and examples, in a directory of its own.
#
#   scripts/redis.sh install              install Debian's redis-server package if missing
#   scripts/redis.sh start DIR [PORT] [HOST]
#                                         start a server on HOST:PORT (127.0.0.1:6379) with
#                                         its files in DIR; waits until it serves; prints its pid
#   scripts/redis.sh stop DIR             stop the server started in DIR
#
# With SQUALL_REDIS_PASSWORD set, the server asks clients for that password. It keeps its
# data in memory only (no snapshots, no append-only file).
set -euo pipefail

install() {
    # One install at a time: tests that start servers in parallel would race for apt's lock.
    exec 9>"${TMPDIR:-/tmp}/squall-install.lock"
    flock 9
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return 0
    fi
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    echo "installing Redis (Debian package redis-server)" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq redis-server >/dev/null
}

start() {
    local dir=$1 port=${2:-6379} host=${3:-127.0.0.1}
    mkdir -p "$dir"
    local auth=()
    if [[ -n "${SQUALL_REDIS_PASSWORD:-}" ]]; then
        auth=(--requirepass "$SQUALL_REDIS_PASSWORD")
    fi
    # Protected mode refuses clients off loopback when there is no password: a server on a
    # private bridge address is there to serve the namespaces behind it.
    local protect=(--protected-mode yes)
    [[ "$host" == 127.0.0.1 || -n "${SQUALL_REDIS_PASSWORD:-}" ]] || protect=(--protected-mode no)
    redis-server --bind "$host" "${protect[@]}" --port "$port" --dir "$dir" --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --appendonly no \
        "${auth[@]}"
    for _ in $(seq 100); do
        # A server that asks for a password still answers PING with NOAUTH: it serves.
        if redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q -e PONG -e NOAUTH; then
            cat "$dir/redis.pid"
            return 0
        fi
        sleep 0.1
    done
    echo "Redis did not serve on $host:$port within 10 s" >&2
    tail -20 "$dir/redis.log" >&2 || true
    exit 1
}

stop() {
    local dir=$1
    [[ -f "$dir/redis.pid" ]] || return 0
    local pid
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
