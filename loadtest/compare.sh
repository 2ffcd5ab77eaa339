#!/usr/bin/env bash
# Compare our signaling with the original tuturu 0.1.3 (Bun/TypeScript) on this machine, in one
# run, interleaved, with `tuturu loadtest` driving both the same way.
#
#   loadtest/compare.sh [--tracing] ANCHOR [TUTURU]
#
#   ANCHOR   the original's control script (or $COMPARE_ANCHOR): `ANCHOR start PORT` starts it on
#            127.0.0.1:PORT and prints its PID. Build it first (`ANCHOR build GITDIR`).
#   TUTURU   our binary (or $COMPARE_BIN; default bin/tuturu), built from the commit to measure.
#   --tracing  (or COMPARE_TRACING=1) ours exports traces and metrics over OTLP/HTTP to a local
#            sink that discards them (`tuturu loadtest -otlp-sink`). Report only: the original
#            exports nothing. Off by default.
#
# Each server runs pinned to one core (COMPARE_SERVER_CPU, default 1; ours as `tuturu all`, one
# process, so Go sees one CPU), the load tool on another (COMPARE_TOOL_CPU, default 0). Phases:
#   (a) closed loop, COMPARE_CONCURRENCY (32) calls in flight, COMPARE_CLOSED_CALLS (2000)
#       measured: set-ups/s and server CPU per set-up;
#   (b) open loop at COMPARE_RATE (200) set-ups/s, COMPARE_RATE_CALLS (1500) measured: server
#       CPU per set-up, p50/p99 set-up latency;
#   (c) COMPARE_IDLE (10000) joined idle sessions held COMPARE_IDLE_HOLD (10s), each server
#       freshly started: RSS added per session.
# (a) and (b) run COMPARE_ROUNDS (2) times, both servers up, order alternating (ours, original,
# original, ours, ...), each run after COMPARE_WARMUP (100) unmeasured calls.
# Server CPU is utime+stime of the server's PID from /proc/<pid>/stat across the measured calls
# and until the server is idle again (work they left queued), divided by completed set-ups;
# over rounds: total CPU / total set-ups, total set-ups / total time, mean of the rounds'
# percentiles. Memory: (VmRSS with the sessions open - VmRSS before opening them) / sessions.
# Queue share: time the server's threads waited for a CPU per second of CPU they used; high
# means the machine was busy and rates and latencies say more about it than about the server.
#
# Ours is started with LOG_LEVEL=$COMPARE_LOG_LEVEL (default info, its default); the original
# logs every message to a file, as it ships. The original has no join limits; ours gets its
# join rate and sockets-per-address limits raised (one address makes every join).
# Logs, figures and the table stay in $COMPARE_WORK (default a new directory under /tmp).
set -uo pipefail

die() { echo "compare: $*" >&2; exit 1; }
say() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }

TRACING=${COMPARE_TRACING:-0}
args=()
for a in "$@"; do
	case $a in
	--tracing) TRACING=1 ;;
	-h | --help) sed -n '2,36p' "$0"; exit 0 ;;
	*) args+=("$a") ;;
	esac
done
ANCHOR=${args[0]:-${COMPARE_ANCHOR:-}}
BIN=${args[1]:-${COMPARE_BIN:-bin/tuturu}}
[ -n "$ANCHOR" ] || die "usage: $0 [--tracing] ANCHOR [TUTURU] (or set COMPARE_ANCHOR)"
[ -x "$ANCHOR" ] || die "$ANCHOR is not an executable script"
[ -x "$BIN" ] || die "$BIN is not an executable (go build -o bin/tuturu ./cmd/tuturu)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

ROUNDS=${COMPARE_ROUNDS:-2}
CLOSED_CALLS=${COMPARE_CLOSED_CALLS:-2000}
CONCURRENCY=${COMPARE_CONCURRENCY:-32}
RATE=${COMPARE_RATE:-200}
RATE_CALLS=${COMPARE_RATE_CALLS:-1500}
WARMUP=${COMPARE_WARMUP:-100}
IDLE=${COMPARE_IDLE:-10000}
IDLE_HOLD=${COMPARE_IDLE_HOLD:-10s}
SERVER_CPU=${COMPARE_SERVER_CPU:-1}
TOOL_CPU=${COMPARE_TOOL_CPU:-0}
ORIG_PORT=${COMPARE_ORIG_PORT:-3391}
BASE=${COMPARE_PORT_BASE:-28080} # ours: gateway BASE, services BASE+1..3, TURN BASE+4, sink BASE+5
LOG_LEVEL_OURS=${COMPARE_LOG_LEVEL:-info}
WORK=${COMPARE_WORK:-$(mktemp -d /tmp/tuturu-compare.XXXXXX)}
mkdir -p "$WORK" || die "cannot create $WORK"

command -v taskset >/dev/null || die "taskset is missing (util-linux)"
command -v ss >/dev/null || die "ss is missing (iproute2)"
taskset -c "$SERVER_CPU,$TOOL_CPU" true 2>/dev/null || die "CPUs $SERVER_CPU and $TOOL_CPU are not both available"
# Every idle session is a socket in the load tool and in the server (both inherit this limit).
need=$((IDLE + 2048))
if (($(ulimit -n) < need)); then
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] || ((hard >= need)) || die "ulimit -Hn is $hard; $IDLE sessions need $need descriptors"
	ulimit -n "$need" || die "cannot raise ulimit -n to $need"
fi
# Nothing from the caller's environment steers the tool or our exporters.
unset "${!LOADTEST_@}" "${!OTEL_@}"

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { ss -ltnH "sport = :$1" | grep -q .; }
wait_listen() { # port pid
	for _ in $(seq 1 100); do
		listening "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
stop() { # pid: stop a server this script started, and forget it
	local p keep=()
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
	kill -INT "$1" 2>/dev/null || return 0
	for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null
}

for p in "$ORIG_PORT" $(seq "$BASE" $((BASE + 5))); do
	listening "$p" && die "port $p is in use (set COMPARE_ORIG_PORT / COMPARE_PORT_BASE)"
done

SINK=""
if [ "$TRACING" = 1 ]; then
	taskset -c "$TOOL_CPU" "$BIN" loadtest -otlp-sink "127.0.0.1:$((BASE + 5))" >"$WORK/sink.log" 2>&1 &
	SINK=$!
	PIDS+=("$SINK")
	wait_listen $((BASE + 5)) "$SINK" || die "OTLP sink did not start; see $WORK/sink.log"
fi

OURS_URL=ws://127.0.0.1:$BASE/ws
ORIG_URL=ws://127.0.0.1:$ORIG_PORT/ws
OURS=""
ORIG=""

start_ours() {
	local data=$WORK/ours-data-$SECONDS
	rm -rf "$data" && mkdir -p "$data"
	(
		export GATEWAY_ADDR=127.0.0.1:$BASE ROOMSVC_ADDR=127.0.0.1:$((BASE + 1)) \
			CREDSVC_ADDR=127.0.0.1:$((BASE + 2)) TURNSVC_ADDR=127.0.0.1:$((BASE + 3)) \
			ROOMSVC_URL=http://127.0.0.1:$((BASE + 1)) CREDSVC_URL=http://127.0.0.1:$((BASE + 2)) \
			TURN_LISTEN_HOST=127.0.0.1 TURN_PORT=$((BASE + 4)) TURN_MIN_PORT=41000 TURN_MAX_PORT=41100 \
			WS_JOINS_PER_MINUTE=100000000 WS_JOIN_BURST=1000000 WS_MAX_SOCKETS_PER_ADDRESS=1000000 \
			DATA_DIR=$data LOG_LEVEL=$LOG_LEVEL_OURS
		[ -z "$SINK" ] || export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$((BASE + 5))
		exec taskset -c "$SERVER_CPU" "$BIN" all
	) >>"$WORK/ours.log" 2>&1 &
	OURS=$!
	PIDS+=("$OURS")
	wait_listen "$BASE" "$OURS" || die "ours did not start; see $WORK/ours.log"
}
start_orig() {
	local out
	out=$(taskset -c "$SERVER_CPU" "$ANCHOR" start "$ORIG_PORT" 2>>"$WORK/orig-start.log")
	ORIG=$(head -n1 <<<"$out")
	[[ $ORIG =~ ^[0-9]+$ ]] && PIDS+=("$ORIG")
	[[ $ORIG =~ ^[0-9]+$ ]] && listening "$ORIG_PORT" || die "the original did not start; see $WORK/orig-start.log"
}

fig() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n1; }

# run NAME WHO ARGS...: one load-tool run against ours or orig, figures to $WORK/NAME.fig.
run() {
	local name=$1 who=$2 url pid
	shift 2
	if [ "$who" = ours ]; then url=$OURS_URL pid=$OURS; else url=$ORIG_URL pid=$ORIG; fi
	taskset -c "$TOOL_CPU" "$BIN" loadtest -url "$url" -server-pid "$pid" -result "$WORK/$name.fig" \
		-warmup "$WARMUP" "$@" >"$WORK/$name.log" 2>&1
	local rc=$? f=$WORK/$name.fig
	if [ ! -s "$f" ]; then
		say "$name: no figures (exit $rc); see $WORK/$name.log"
		return
	fi
	if [ "$(fig "$f" idle_open)" != 0 ]; then
		say "$name: $(fig "$f" idle_open) sessions, RSS $(($(fig "$f" rss_before) >> 20)) -> $(($(fig "$f" rss_idle) >> 20)) MiB, $(fig "$f" rss_delta_per_session) B added per session"
	else
		say "$name: ok $(fig "$f" ok) failed $(fig "$f" failed), $(fig "$f" setups_per_s)/s, $(fig "$f" cpu_us_per_setup) µs CPU per set-up, p50 $(fig "$f" p50_us) µs p99 $(fig "$f" p99_us) µs"
	fi
	[ "$rc" = 0 ] || say "$name: the load tool exited $rc; see $WORK/$name.log"
}

say "ours: $BIN$([ -n "$SINK" ] && echo ', tracing export on'); original: $ANCHOR; work: $WORK"
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# (a) and (b): both servers up, interleaved.
start_ours
start_orig
for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2)); then order="ours orig"; else order="orig ours"; fi
	for who in $order; do
		run "closed-$who-$r" "$who" -calls "$CLOSED_CALLS" -rate 0 -concurrency "$CONCURRENCY"
	done
	for who in $(tr ' ' '\n' <<<"$order" | tac); do
		run "rate-$who-$r" "$who" -calls "$RATE_CALLS" -rate "$RATE" -concurrency 64
	done
done
stop "$OURS"
stop "$ORIG"

# (c): each server fresh, alone.
start_orig
run "idle-orig-1" orig -calls 0 -idle "$IDLE" -idle-hold "$IDLE_HOLD" -concurrency 64
stop "$ORIG"
start_ours
run "idle-ours-1" ours -calls 0 -idle "$IDLE" -idle-hold "$IDLE_HOLD" -concurrency 64
stop "$OURS"
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# agg PHASE WHO WHAT: a figure over the rounds' files.
agg() {
	local files=("$WORK/$1-$2"-*.fig)
	[ -e "${files[0]}" ] || { echo ""; return; }
	awk -F= -v what="$3" '
		{ v[$1] += $2 }
		$1 == "ok" { n++ }
		END {
			if (what == "cpu")   x = v["ok"] ? v["server_cpu_us"] / v["ok"] : ""
			if (what == "rate")  x = v["elapsed_us"] ? v["ok"] / (v["elapsed_us"] / 1e6) : ""
			if (what == "p50")   x = n ? v["p50_us"] / n / 1000 : ""
			if (what == "p99")   x = n ? v["p99_us"] / n / 1000 : ""
			if (what == "queue") x = v["server_cpu_us"] ? v["server_wait_us"] / v["server_cpu_us"] : ""
			if (what == "failed") x = v["failed"] + 0
			if (what == "delta") x = v["rss_delta_per_session"] / 1024
			if (what == "per")   x = v["rss_per_session"] / 1024
			if (what == "held")  x = v["idle_open"] + 0
			print x
		}' "${files[@]}"
}

row() { # label phase what format
	local o b
	o=$(agg "$2" ours "$3")
	b=$(agg "$2" orig "$3")
	awk -v l="$1" -v o="$o" -v b="$b" -v f="$4" 'BEGIN {
		os = o == "" ? "n/a" : sprintf(f, o); bs = b == "" ? "n/a" : sprintf(f, b)
		rs = (o == "" || b == "" || b + 0 == 0) ? "n/a" : sprintf("%.2f", o / b)
		printf "%-52s %12s %12s %10s\n", l, os, bs, rs
	}'
}

{
	echo
	printf "%-52s %12s %12s %10s\n" "figure ($ROUNDS rounds; tracing export $([ -n "$SINK" ] && echo on || echo off))" ours original us/orig
	row "(a) closed loop ($CONCURRENCY in flight): set-ups/s" closed rate "%.0f"
	row "(a) closed loop: server CPU µs per set-up" closed cpu "%.0f"
	row "(a) closed loop: failed calls" closed failed "%d"
	row "(a) closed loop: server queue s per CPU s" closed queue "%.2f"
	row "(b) $RATE set-ups/s: achieved set-ups/s" rate rate "%.0f"
	row "(b) $RATE set-ups/s: server CPU µs per set-up" rate cpu "%.0f"
	row "(b) $RATE set-ups/s: set-up latency p50 ms" rate p50 "%.2f"
	row "(b) $RATE set-ups/s: set-up latency p99 ms" rate p99 "%.2f"
	row "(b) $RATE set-ups/s: failed calls" rate failed "%d"
	row "(b) $RATE set-ups/s: server queue s per CPU s" rate queue "%.2f"
	row "(c) idle sessions held" idle held "%d"
	row "(c) KiB RSS added per idle session" idle delta "%.1f"
	row "(c) KiB RSS per idle session (RSS / sessions)" idle per "%.1f"
} | tee "$WORK/table.txt"
