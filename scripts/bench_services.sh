#!/usr/bin/env bash
# What `make bench` needs from the machine: wrk, and PostgreSQL and Redis answering on loopback.
# Installs wrk with apt-get when missing; starts the machine's PostgreSQL and Redis when they are
# not answering (it never stops or reconfigures them). Idempotent; safe to run on every bench.
set -u

have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo -n "$@"; else "$@"; fi; }

if ! have wrk; then
  echo "bench: installing wrk (apt-get)" >&2
  as_root apt-get install -y -qq wrk >/dev/null 2>&1 \
    || { as_root apt-get update -qq >/dev/null 2>&1 && as_root apt-get install -y -qq wrk >/dev/null 2>&1; } \
    || echo "bench: could not install wrk" >&2
fi

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_up; then
  echo "bench: starting PostgreSQL" >&2
  if have pg_ctlcluster && have pg_lsclusters; then
    pg_lsclusters -h 2>/dev/null | while read -r version cluster _; do
      as_root pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 || true
    done
  fi
  pg_up || as_root service postgresql start >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
  pg_up || echo "bench: PostgreSQL is not answering on 127.0.0.1:5432" >&2
fi

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG || (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }
if ! redis_up; then
  echo "bench: starting Redis" >&2
  as_root service redis-server start >/dev/null 2>&1 \
    || (have redis-server && redis-server --bind 127.0.0.1 --port 6379 --daemonize yes >/dev/null 2>&1) \
    || true
  for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  redis_up || echo "bench: Redis is not answering on 127.0.0.1:6379" >&2
fi
exit 0
