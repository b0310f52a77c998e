#!/usr/bin/env bash
# Makes sure the services the tests need are installed and running on 127.0.0.1:
#   - PostgreSQL on :5432 (trust auth, user postgres): started if down, installed if missing;
#   - tansu (a Kafka-protocol broker) on :9092: installed once from crates.io, started if down.
# Safe to run again: it only does what is missing.
set -euo pipefail

TANSU_VERSION=0.6.0
KAFKA_PORT=9092
PG_PORT=5432
LOG_DIR="${TMPDIR:-/tmp}"

say() { printf 'services: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 what=$2
  for _ in $(seq 1 120); do
    port_open "$port" && return 0
    sleep 0.5
  done
  say "$what did not start listening on 127.0.0.1:$port"; return 1
}

ensure_postgres() {
  if port_open "$PG_PORT"; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "installing PostgreSQL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    local conf; conf=$(ls -d /etc/postgresql/*/main | head -1)
    # trust auth on loopback, as on these machines
    sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$conf/pg_hba.conf"
  fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -1)
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for_port "$PG_PORT" PostgreSQL
}

ensure_tansu() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v tansu >/dev/null 2>&1; then
    say "installing tansu $TANSU_VERSION from crates.io (15 to 20 minutes, once)"
    cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore
  fi
  if port_open "$KAFKA_PORT"; then return 0; fi
  say "starting tansu on 127.0.0.1:$KAFKA_PORT (log: $LOG_DIR/sevloop-tansu.log)"
  nohup tansu broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine memory://tansu/ >"$LOG_DIR/sevloop-tansu.log" 2>&1 &
  wait_for_port "$KAFKA_PORT" tansu
}

ensure_postgres
ensure_tansu
say "PostgreSQL on 127.0.0.1:$PG_PORT and Kafka (tansu) on 127.0.0.1:$KAFKA_PORT are up"
