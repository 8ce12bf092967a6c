#!/usr/bin/env bash
# The fault kit (tests/faults) starts servers of its own: redis-server, and PostgreSQL's initdb/postgres
# for PgCluster. Install Debian's redis-server when it is missing (root only); the machine's shared Redis
# may well run without the binary being installed here (a container, another host).
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "redis-server not found: installing Debian's redis-server (the fault kit starts its own)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "the fault tests need redis-server: run 'sudo apt-get install redis-server'" >&2
    exit 1
  fi
fi
if [ -z "${PG_BINDIR:-}" ] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "PostgreSQL server binaries not found (set PG_BINDIR): the PgCluster fault tests will be skipped" >&2
fi
