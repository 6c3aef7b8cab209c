# Start a throwaway PostgreSQL for the store tests and export ASKTA_TEST_POSTGRES_URL.
# Source it (`. .ci/postgres.sh`) before `make test`; it stops the server on exit.
# Uses Debian's `postgresql` package (installed when missing) and a private cluster
# in a temporary folder, so the machine's own clusters are left alone.

askta_pg_start() {
  local bindir port dir
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  dir=$(mktemp -d /tmp/askta-pg.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root
    as_pg=(runuser -u postgres --)
    chown postgres:postgres "$dir"
  fi
  "${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  export ASKTA_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
  ASKTA_PG_STOP="${as_pg[*]} $bindir/pg_ctl -D $dir/data -m immediate stop; rm -rf $dir"
  trap 'eval "$ASKTA_PG_STOP" >/dev/null 2>&1 || true' EXIT
  echo "PostgreSQL for the store tests: $ASKTA_TEST_POSTGRES_URL"
}

askta_pg_start
