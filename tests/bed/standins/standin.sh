# shellcheck shell=sh
# The body of every service stand-in on a test-bed compute VM (see README.md beside this file).
# The init script that tests/bed/bed.py writes into the host's own /etc/init.d sets NAME, RUN_DIR and CONFIGS,
# then sources this file with the action as $1. The "service" is a real long-lived process (sleep) started
# with start-stop-daemon, its pid in $RUN_DIR/$NAME.pid; every start, stop and restart is appended to
# $RUN_DIR/$NAME.log with the checksums of the service's configuration files as they were when it started.

PIDFILE=$RUN_DIR/$NAME.pid
LOG=$RUN_DIR/$NAME.log
SLEEP=$(command -v sleep)

record() {
    echo "$(date +%s.%N) $*" >>"$LOG"
}

running() {
    start-stop-daemon --status --pidfile "$PIDFILE" --exec "$SLEEP"
}

fingerprint() {
    for file in $CONFIGS; do
        if [ -f "$file" ]; then
            printf ' %s=%s' "$file" "$(sha256sum <"$file" | cut -c1-12)"
        else
            printf ' %s=missing' "$file"
        fi
    done
}

do_start() {
    if running; then
        record "start: already running pid=$(cat "$PIDFILE")"
        return 0
    fi
    start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$PIDFILE" \
        --exec "$SLEEP" -- infinity || return 1
    record "started pid=$(cat "$PIDFILE")$(fingerprint)"
}

do_stop() {
    if ! running; then
        record "stop: not running"
        rm -f "$PIDFILE"
        return 0
    fi
    pid=$(cat "$PIDFILE")
    start-stop-daemon --stop --quiet --pidfile "$PIDFILE" --exec "$SLEEP" --retry TERM/5/KILL/2 || return 1
    rm -f "$PIDFILE"
    record "stopped pid=$pid"
}

case "$1" in
    start)
        do_start
        ;;
    stop)
        do_stop
        ;;
    restart | force-reload)
        record "restart"
        do_stop && do_start
        ;;
    status)
        if running; then
            echo "$NAME is running"
            exit 0
        fi
        echo "$NAME is not running"
        exit 3
        ;;
    *)
        echo "Usage: /etc/init.d/$NAME {start|stop|restart|force-reload|status}" >&2
        exit 2
        ;;
esac
