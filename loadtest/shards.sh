#!/usr/bin/env bash
# CPU per call set-up through a gateway whose rooms are on 3 roomsvc shards against one on a
# single roomsvc, on this machine, in one run, interleaved.
#
#   loadtest/shards.sh [TUTURU]
#
#   TUTURU   the binary (or $SHARDS_BIN; default bin/tuturu).
#
# Every service is its own process, all pinned to one core (SHARDS_SERVER_CPU, default 1), the
# load tool on another (SHARDS_TOOL_CPU, default 0): credsvc and turnsvc, roomsvc shards r0, r1,
# r2, gateway A (ROOMSVC_URL = r0) and gateway B (r0,r1,r2). SHARDS_ROUNDS (3) rounds of a
# closed loop, SHARDS_CONCURRENCY (32) calls in flight, SHARDS_CALLS (2000) measured after a
# separate run of SHARDS_WARMUP (100); order A B, B A, A B, ... CPU is utime+stime from /proc/<pid>/stat of
# each process across a run (the load tool waits until they are idle again), divided by the
# completed set-ups; over rounds: total CPU / total set-ups. Ports SHARDS_PORT_BASE (28180)
# and the 8 after it. Logs and figures stay in $SHARDS_WORK (default a new directory in /tmp).
set -uo pipefail

die() { echo "shards: $*" >&2; exit 1; }
say() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }
[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { sed -n '2,17p' "$0"; exit 0; }

BIN=${1:-${SHARDS_BIN:-bin/tuturu}}
[ -x "$BIN" ] || die "$BIN is not an executable (go build -o bin/tuturu ./cmd/tuturu)"
ROUNDS=${SHARDS_ROUNDS:-3}
CALLS=${SHARDS_CALLS:-2000}
WARMUP=${SHARDS_WARMUP:-100}
CONCURRENCY=${SHARDS_CONCURRENCY:-32}
SERVER_CPU=${SHARDS_SERVER_CPU:-1}
TOOL_CPU=${SHARDS_TOOL_CPU:-0}
BASE=${SHARDS_PORT_BASE:-28180}
WORK=${SHARDS_WORK:-$(mktemp -d /tmp/tuturu-shards.XXXXXX)}
mkdir -p "$WORK" || die "cannot create $WORK"
taskset -c "$SERVER_CPU,$TOOL_CPU" true 2>/dev/null || die "CPUs $SERVER_CPU and $TOOL_CPU are not both available"
unset "${!LOADTEST_@}" "${!OTEL_@}"

declare -A PID
cleanup() {
	for p in "${PID[@]}"; do kill -INT "$p" 2>/dev/null; done
	sleep 1
	for p in "${PID[@]}"; do kill -KILL "$p" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { ss -ltnH "sport = :$1" | grep -q .; }
for p in $(seq "$BASE" $((BASE + 8))); do
	listening "$p" && die "port $p is in use (set SHARDS_PORT_BASE)"
done

# start NAME PORT TARGET VAR=VALUE...: one service, pinned, shared tokens, its own data.
start() {
	local name=$1 port=$2 target=$3
	shift 3
	mkdir -p "$WORK/$name"
	env ADMIN_TOKEN=shards-admin-token INTERNAL_TOKEN=shards-internal-token DATA_DIR="$WORK/$name" \
		LOG_LEVEL=warn CREDSVC_URL="http://127.0.0.1:$((BASE + 1))" "$@" \
		taskset -c "$SERVER_CPU" "$BIN" "$target" >"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
	for _ in $(seq 1 100); do
		listening "$port" && return 0
		kill -0 "${PID[$name]}" 2>/dev/null || break
		sleep 0.1
	done
	die "$name did not start; see $WORK/$name.log"
}
LIMITS=(WS_JOINS_PER_MINUTE=100000000 WS_JOIN_BURST=1000000 WS_MAX_SOCKETS_PER_ADDRESS=1000000)
start credsvc $((BASE + 1)) credsvc CREDSVC_ADDR=127.0.0.1:$((BASE + 1))
start turnsvc $((BASE + 2)) turnsvc TURNSVC_ADDR=127.0.0.1:$((BASE + 2)) TURN_LISTEN_HOST=127.0.0.1 \
	TURN_PORT=$((BASE + 3)) TURN_MIN_PORT=41200 TURN_MAX_PORT=41300
for i in 0 1 2; do start "r$i" $((BASE + 4 + i)) roomsvc ROOMSVC_ADDR=127.0.0.1:$((BASE + 4 + i)); done
R=http://127.0.0.1
start gwA $((BASE + 7)) gateway GATEWAY_ADDR=127.0.0.1:$((BASE + 7)) ROOMSVC_URL=$R:$((BASE + 4)) "${LIMITS[@]}"
start gwB $((BASE + 8)) gateway GATEWAY_ADDR=127.0.0.1:$((BASE + 8)) \
	ROOMSVC_URL=$R:$((BASE + 4)),$R:$((BASE + 5)),$R:$((BASE + 6)) "${LIMITS[@]}"

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # clock ticks
TICK_US=$((1000000 / $(getconf CLK_TCK)))
GROUPS_=(gw room other)
members() { # group for setup (A or B): its processes
	case $1 in
	gw) [ "$2" = A ] && echo gwA || echo gwB ;;
	room) [ "$2" = A ] && echo r0 || echo r0 r1 r2 ;;
	other) echo credsvc turnsvc ;;
	esac
}

# run SETUP ROUND: one closed-loop run through gateway A or B; figures to $WORK/SETUP-ROUND.fig.
run() {
	local s=$1 r=$2 port pids=() g n before after f=$WORK/$1-$2.fig
	[ "$s" = A ] && port=$((BASE + 7)) || port=$((BASE + 8))
	# Warm-up first, apart, so the CPU read below covers the measured calls only.
	taskset -c "$TOOL_CPU" "$BIN" loadtest -url "ws://127.0.0.1:$port/ws" -warmup 0 -calls "$WARMUP" -rate 0 \
		-concurrency "$CONCURRENCY" >"$WORK/$s-$r-warmup.log" 2>&1 || say "$s-$r: the warm-up failed; see $WORK/$s-$r-warmup.log"
	declare -A b
	for g in "${GROUPS_[@]}"; do
		b[$g]=0
		for n in $(members $g $s); do b[$g]=$((b[$g] - $(cpu "${PID[$n]}"))); pids+=("${PID[$n]}"); done
	done
	taskset -c "$TOOL_CPU" "$BIN" loadtest -url "ws://127.0.0.1:$port/ws" -server-pid "$(IFS=,; echo "${pids[*]}")" \
		-result "$f" -warmup 0 -calls "$CALLS" -rate 0 -concurrency "$CONCURRENCY" >"$WORK/$s-$r.log" 2>&1 ||
		say "$s-$r: the load tool failed; see $WORK/$s-$r.log"
	for g in "${GROUPS_[@]}"; do
		for n in $(members $g $s); do b[$g]=$((b[$g] + $(cpu "${PID[$n]}"))); done
		echo "cpu_us_$g=$((b[$g] * TICK_US))" >>"$f"
	done
	say "$s-$r: $(sed -n 's/^ok=//p' "$f") ok, $(sed -n 's/^failed=//p' "$f") failed, $(sed -n 's/^cpu_us_per_setup=//p' "$f") µs CPU per set-up"
}

say "load average: $(cut -d' ' -f1-3 /proc/loadavg); work: $WORK"
for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2)); then order="A B"; else order="B A"; fi
	for s in $order; do run "$s" "$r"; done
done
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

agg() { # setup key: total key / total ok over the rounds
	awk -F= -v k="$2" '$1 == "ok" { ok += $2 } $1 == k { v += $2 } END { printf "%.0f", ok ? v / ok : 0 }' "$WORK/$1"-*.fig
}
{
	printf "%-34s %10s %10s %8s\n" "µs CPU per set-up ($ROUNDS rounds)" "1 shard" "3 shards" "3/1"
	for k in cpu_us_gw cpu_us_room cpu_us_other server_cpu_us; do
		a=$(agg A $k) b=$(agg B $k)
		printf "%-34s %10s %10s %8s\n" "$k" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "%.2f", b / a }')"
	done
} | tee "$WORK/table.txt"
