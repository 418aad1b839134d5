#!/usr/bin/env bash
# GATEWAY_START for the nchan side-by-side (/work/shared/bench/side-by-side.sh), or any bench that starts "a
# gateway" with PORT, MQTT_PORT and DATA_DIR set: what users run for N processes on one machine
# (hardware/pi/README.md section 9), in the foreground, all in DATA_DIR:
#   - redis-server on a free loopback port, append-only with an fsync per write (hardware/pi/redis/redis.conf);
#   - `npm run gateway -- --workers N` on it (REDIS_URL), workers on free consecutive ports, the supervisor's
#     embedded broker on MQTT_PORT (where the bench publishes), its shared port on PORT (where the bench's SSE
#     clients connect);
#   - with --nginx: the supervisor's shared port elsewhere, and nginx with the shipped config rendered for the
#     workers (npm run nginx-config) on PORT instead, one nginx worker process as nchan gets, started once every
#     worker is healthy (what gateways on several machines need).
# Usage: GATEWAY_START="gateway/bench/side-by-side-workers.sh 2 [--nginx]" ../shared/bench/side-by-side.sh .
# HTTP auth is open on 127.0.0.1 (the bench sends no token). SIGTERM to the process group stops all three.
set -euo pipefail
N=${1:-2}
NGINX=${2:-}
: "${PORT:?PORT: where nginx listens}" "${MQTT_PORT:?MQTT_PORT: the embedded broker}" "${DATA_DIR:?DATA_DIR}"
HERE=$(cd "$(dirname "$0")/../.." && pwd)
cd "$HERE"
free_ports() { python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randint(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
else:
    sys.exit("no free consecutive ports")
PY
}
REDIS_PORT=$(free_ports 1)
BASE=$(free_ports "$N")
SHARED_PORT=$PORT
[ "$NGINX" = "--nginx" ] && SHARED_PORT=$(free_ports 1)
mkdir -p "$DATA_DIR/redis" "$DATA_DIR/gateway" "$DATA_DIR/nginx/tmp"

REDIS_PASSWORD="bench-$RANDOM$RANDOM"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --requirepass "$REDIS_PASSWORD" --dir "$DATA_DIR/redis" --appendonly yes --appendfsync always --save "" \
  >"$DATA_DIR/redis.log" 2>&1 &
for _ in $(seq 50); do REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT" HOST=127.0.0.1 AUTH_MODE=open DATA_DIR="$DATA_DIR/gateway" PORT="$SHARED_PORT" \
  npm run -s gateway -- --workers "$N" --base-port "$BASE" &
for i in $(seq 0 $((N - 1))); do
  for _ in $(seq 120); do curl -sf -o /dev/null "http://127.0.0.1:$((BASE + i))/healthz" && break; sleep 0.5; done
done
if [ "$NGINX" != "--nginx" ]; then wait; exit; fi

npx tsx hardware/pi/nginx/cli.ts --workers "$N" --base-port "$BASE" --listen "127.0.0.1:$PORT" >"$DATA_DIR/nginx/sleepy-sensors.conf"
# The main file Debian's /etc/nginx/nginx.conf would be, for an unprivileged run; connections for the bench's
# subscribers twice over (client side and upstream side).
cat >"$DATA_DIR/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $DATA_DIR/nginx/nginx.pid;
error_log $DATA_DIR/nginx/error.log warn;
events { worker_connections 16384; }
http {
  client_body_temp_path $DATA_DIR/nginx/tmp; proxy_temp_path $DATA_DIR/nginx/tmp; fastcgi_temp_path $DATA_DIR/nginx/tmp;
  uwsgi_temp_path $DATA_DIR/nginx/tmp; scgi_temp_path $DATA_DIR/nginx/tmp;
  include $DATA_DIR/nginx/sleepy-sensors.conf;
}
CONF
sed -i "s|/var/log/nginx/|$DATA_DIR/nginx/|g" "$DATA_DIR/nginx/sleepy-sensors.conf"
exec nginx -p "$DATA_DIR/nginx" -c "$DATA_DIR/nginx/nginx.conf" -e "$DATA_DIR/nginx/error.log" -g "daemon off;"
