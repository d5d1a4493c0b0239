#!/usr/bin/env bash
# Installs (if needed) and starts Debian's PostgreSQL, with a `tugboat` role and database on
# 127.0.0.1:5432. Prints the SQLAlchemy URL the tests read from TUGBOAT_TEST_POSTGRES.
set -euo pipefail
cd /  # su postgres must be able to enter the working directory
if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^$ver main"; then pg_createcluster "$ver" main >&2; fi
pg_ctlcluster "$ver" main start >&2 2>/dev/null || true
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 && break; sleep 0.2; done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='tugboat'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE tugboat LOGIN PASSWORD 'tugboat'\"" >&2
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='tugboat'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE DATABASE tugboat OWNER tugboat\"" >&2
echo "postgresql+psycopg://tugboat:tugboat@127.0.0.1:5432/tugboat"
