# Start a throwaway Redis for the tests that need one and export ASKTA_TEST_REDIS_URL.
# Source it (`. .ci/redis.sh`) before `make test`; it stops the server on exit. Uses
# Debian's `redis-server` package (installed when missing), on a free loopback port,
# with no persistence. Without it, the tests start a private redis-server themselves
# (tests/conftest.py, `redis_url`).

askta_redis_start() {
  local port dir
  if ! command -v redis-server >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  dir=$(mktemp -d /tmp/askta-redis.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/log"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export ASKTA_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  ASKTA_REDIS_STOP="redis-cli -p $port shutdown nosave; rm -rf $dir"
  echo "Redis for the tests: $ASKTA_TEST_REDIS_URL"
}

askta_redis_start
