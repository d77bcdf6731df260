#!/usr/bin/env bash
# A standalone Apache ZooKeeper for tests and local clusters.
#
#   scripts/zookeeper.sh install              install Debian's zookeeper package if missing
#   scripts/zookeeper.sh start DIR [PORT]     start a server with its data in DIR (port 2181)
#                                             and wait until it serves; prints its pid
#   scripts/zookeeper.sh stop DIR             stop the server started in DIR
#   scripts/zookeeper.sh ready PORT           exit 0 when the server on PORT serves
#
# The server listens on 127.0.0.1 only, has no admin server (which would take port 8080),
# allows the four-letter commands, and accepts sessions from 400 ms (tickTime 200 ms) so
# that tests can use short session timeouts.
set -euo pipefail

ZOOKEEPER_JAR=/usr/share/java/zookeeper.jar
SLF4J_JAR=/usr/share/java/slf4j-simple.jar

install() {
    # One install at a time: tests that start servers in parallel would race for apt's lock.
    exec 9>"${TMPDIR:-/tmp}/squall-install.lock"
    flock 9
    if [[ -f "$ZOOKEEPER_JAR" && -f "$SLF4J_JAR" ]] && command -v java >/dev/null; then
        return 0
    fi
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        sudo=(sudo)
    fi
    echo "installing ZooKeeper (Debian package zookeeper)" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq zookeeper libslf4j-java >/dev/null
}

# Sends a four-letter command and prints the answer.
four_letters() {
    local port=$1 command=$2
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf %s '$command' >&3 && cat <&3" \
        2>/dev/null || true
}

ready() {
    # `ruok` answers even when the server cannot serve; `srvr` reports a mode only then.
    four_letters "$1" srvr | grep -q '^Mode:'
}

start() {
    local dir=$1 port=${2:-2181}
    mkdir -p "$dir/data"
    cat >"$dir/zoo.cfg" <<EOF
tickTime=200
minSessionTimeout=400
maxSessionTimeout=60000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
EOF
    java -Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$ZOOKEEPER_JAR:$SLF4J_JAR" \
        org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
        >>"$dir/zookeeper.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/zookeeper.pid"
    for _ in $(seq 1 300); do
        if ready "$port"; then
            echo "$pid"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "ZooKeeper exited; see $dir/zookeeper.log" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "ZooKeeper did not serve on port $port within 15 s; see $dir/zookeeper.log" >&2
    kill "$pid" 2>/dev/null || true
    return 1
}

stop() {
    local dir=$1
    if [[ -f "$dir/zookeeper.pid" ]]; then
        local pid
        pid=$(cat "$dir/zookeeper.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/zookeeper.pid"
    fi
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?data directory}" "${3:-2181}" ;;
    stop) stop "${2:?data directory}" ;;
    ready) ready "${2:?port}" ;;
    *)
        echo "usage: $0 install | start DIR [PORT] | stop DIR | ready PORT" >&2
        exit 2
        ;;
esac
