#!/usr/bin/env bash
# PostgreSQL and Redis on 127.0.0.1 for the test suite; started when CI finds them stopped.
set -euo pipefail
here=$(dirname "$0")
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.1; done
fi
bash "$here/ensure-redis.sh"
