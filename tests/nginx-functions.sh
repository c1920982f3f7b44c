# SPDX-License-Identifier: BSD-3-Clause
# A private nginx for the tests and the benchmarks.  -*- shell-script -*-
#
# Sourced by tests (after functions.sh) and by bench/remote.sh (alone): it
# needs only bash, nginx (Debian's nginx-light) and curl.
#
#   nginx_start DOCROOT [DIR]   serve DOCROOT on 127.0.0.1, a free port
#                               (NGINX_WANT_PORT=N: that one)
#   nginx_stop                  stop it (by its pid), keep DIR (and the log)
#   nginx_restart               start it again, same port and config
#   nginx_requests              GET requests in the access log so far
#   nginx_bytes                 body bytes those requests sent
#
# nginx_start writes DIR (default: DOCROOT.nginx) with nginx.conf, the
# logs, the temporary directories and the lock file: nothing outside DIR
# and DOCROOT is touched, nginx's own configuration is not read.  The
# master process daemonizes and writes its pid file ($NGINX_PIDFILE); in
# a test (functions.sh sourced first) that file lives in the test's
# socket directory, so the test's exit trap stops nginx whatever the
# reason; elsewhere the caller stops it (nginx_stop in its own trap).
# It sets NGINX_PORT, NGINX_URL (http://127.0.0.1:PORT, no trailing
# slash), NGINX_DIR, NGINX_LOG (the access log) and NGINX_PIDFILE.
#
# URLs: $NGINX_URL/NAME serves DOCROOT/NAME (byte ranges, keep-alive);
# $NGINX_URL/denied/... always answers 403; a missing file 404.  With
# NGINX_DELAY=SECONDS set when nginx_start is called, every request to
# $NGINX_URL/slow/NAME (the same file) is answered SECONDS late (the
# echo module's echo_sleep, then the file as usual): a server that is
# SECONDS away per request, for clients in which nothing can be put
# between the decoder and HTTP (qemu's curl driver, a plain download).
#
# Access log, one line per request, space-separated fields:
#   msec status method request_uri body_bytes_sent "range" connection conn_requests request_time
# (range is "-" without a Range header).  nginx writes a request's line
# when it has sent the response, so read the log after the client is done.

# _nginx_conf PORT : nginx.conf for $NGINX_DIR / $NGINX_ROOT on PORT.
_nginx_conf() {
    local port=$1 d=$NGINX_DIR user='' echo_mod='' slow=''
    # Run as root (CI, the Debian root), nginx's workers would run as
    # "nobody", who may not be able to read the test's files: keep them
    # the user that started the master, as for any other test server.
    if [ "$(id -u)" -eq 0 ]; then user="user root $(id -gn);"; fi
    if [ -n "${NGINX_DELAY:-}" ]; then
        echo_mod=$(_nginx_echo_module) || return 1
        echo_mod="load_module $echo_mod;"
        slow="location ~ ^/slow(/.*)\$ { echo_sleep $NGINX_DELAY; echo_exec \$1; }"
    fi
    cat <<EOF
$echo_mod
$user
worker_processes ${NGINX_WORKERS:-1};
daemon on;
master_process on;
pid $NGINX_PIDFILE;
lock_file $d/nginx.lock;
error_log $d/error.log info;
events { worker_connections 256; }
http {
    log_format q2m '\$msec \$status \$request_method \$request_uri \$body_bytes_sent "\$http_range" \$connection \$connection_requests \$request_time';
    access_log $d/access.log q2m;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        root $NGINX_ROOT;
        location / { }
        location /denied/ { deny all; }
        $slow
    }
}
EOF
}

# The echo module's .so (nginx-light depends on libnginx-mod-http-echo).
_nginx_echo_module() {
    local m
    for m in /usr/lib/nginx/modules/ngx_http_echo_module.so \
             /usr/share/nginx/modules/ngx_http_echo_module.so; do
        [ -f "$m" ] && { echo "$m"; return 0; }
    done
    echo "nginx: no ngx_http_echo_module.so (package libnginx-mod-http-echo) for NGINX_DELAY" >&2
    return 1
}

_nginx_fail() {
    if declare -F fail > /dev/null; then fail "$*"; fi
    echo "nginx: $*" >&2; exit 1
}

# _nginx_launch PORT : start nginx on PORT; 0 = up, 1 = the port is taken,
# anything else fails.
_nginx_launch() {
    local port=$1 deadline
    _nginx_conf "$port" > "$NGINX_DIR/nginx.conf" || _nginx_fail "cannot write nginx.conf"
    rm -f "$NGINX_PIDFILE"
    if ! nginx -p "$NGINX_DIR" -e "$NGINX_DIR/error.log" -c "$NGINX_DIR/nginx.conf" \
            2> "$NGINX_DIR/start.err"; then
        grep -q 'Address already in use' "$NGINX_DIR/start.err" "$NGINX_DIR/error.log" 2> /dev/null &&
            return 1
        cat "$NGINX_DIR/start.err" >&2
        tail -n 5 "$NGINX_DIR/error.log" >&2
        _nginx_fail "nginx failed to start (config $NGINX_DIR/nginx.conf)"
    fi
    # The master has bound the port before it returned; wait for its pid
    # file and for an answer (any HTTP status).
    deadline=$((SECONDS + 30))
    until [ -s "$NGINX_PIDFILE" ] &&
          curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; do
        [ "$SECONDS" -lt "$deadline" ] || _nginx_fail "nginx on port $port does not answer"
        sleep 0.05
    done
    return 0
}

nginx_start() {
    local root=$1 try port
    NGINX_ROOT=$(cd "$root" && pwd)
    NGINX_DIR=${2:-$NGINX_ROOT.nginx}
    mkdir -p "$NGINX_DIR/tmp"
    : > "$NGINX_DIR/access.log"
    NGINX_DIR=$(cd "$NGINX_DIR" && pwd)
    if [ -n "${_SOCKDIR:-}" ]; then
        NGINX_PIDFILE=$(mktemp -u "$_SOCKDIR/nginx-XXXXXX.pid")
    else
        NGINX_PIDFILE=$NGINX_DIR/nginx.pid
    fi
    # A random port (or NGINX_WANT_PORT, e.g. for documentation); taken
    # ones are detected by nginx itself (no race between choosing and
    # binding).
    for ((try = 0; try < 50; try++)); do
        port=${NGINX_WANT_PORT:-$((20000 + RANDOM % 40000))}
        if _nginx_launch "$port"; then
            NGINX_PORT=$port
            NGINX_URL=http://127.0.0.1:$port
            NGINX_LOG=$NGINX_DIR/access.log
            export NGINX_PORT NGINX_URL NGINX_LOG NGINX_DIR NGINX_PIDFILE
            return 0
        fi
    done
    _nginx_fail "no free port for nginx after 50 tries"
}

# nginx_stop : stop the master (TERM: fast shutdown, connections cut) and
# wait until it and its workers are gone.
nginx_stop() {
    local pid i
    pid=$(cat "$NGINX_PIDFILE" 2> /dev/null) || return 0
    [ -n "$pid" ] || return 0
    kill "$pid" 2> /dev/null || true
    for ((i = 0; i < 500; i++)); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.02
    done
    kill -0 "$pid" 2> /dev/null && kill -9 "$pid" 2> /dev/null
    # Workers exit with the master; wait until nothing answers on the port.
    for ((i = 0; i < 250; i++)); do
        curl -s -o /dev/null --max-time 1 "$NGINX_URL/" || break
        sleep 0.02
    done
    rm -f "$NGINX_PIDFILE"
}

# nginx_restart : the same server again (same port, config and log).
nginx_restart() {
    _nginx_launch "$NGINX_PORT" || _nginx_fail "port $NGINX_PORT was taken while nginx was stopped"
}

# nginx_requests [URI-REGEX] : GET requests so far (of URIs matching the
# extended regex, default all).  nginx_bytes [URI-REGEX]: their body bytes.
nginx_requests() {
    awk -v re="${1:-.}" '$3 == "GET" && $4 ~ re { n++ } END { print n + 0 }' "$NGINX_LOG"
}
nginx_bytes() {
    awk -v re="${1:-.}" '$3 == "GET" && $4 ~ re { b += $5 } END { printf "%.0f\n", b }' "$NGINX_LOG"
}
