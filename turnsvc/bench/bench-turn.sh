#!/usr/bin/env bash
# bench-turn: relay throughput of turnsvc next to coturn, with coturn's own load generator.
#
# Both servers run on 127.0.0.1 pinned to one core (SERVER_CPU), the client (turnutils_uclient)
# and the echo peer (turnutils_peer) on another (CLIENT_CPU), with the same offered load: CLIENTS
# sessions each sending MSGS datagrams of LEN bytes every INTERVAL ms to the peer through the
# relay, which echoes them back through the relay. Both use the same credential, issued by a real
# credsvc (coturn checks it with the same static secret, REST format). Reported for each server:
# relayed packets/s, loss, server CPU per relayed packet (from /proc utime+stime), and the ratio.
# Then Allocate latency p50/p99 through turnsvc with RPC-backed auth, cold and cached
# (BenchmarkAllocate in turnsvc, against a Connect credential service on loopback).
#
# Knobs (environment): CLIENTS MSGS LEN INTERVAL SERVER_CPU CLIENT_CPU ROUNDS.
set -euo pipefail

ROOT=$(git rev-parse --show-toplevel)
CLIENTS=${CLIENTS:-20}
MSGS=${MSGS:-2000}
LEN=${LEN:-200}
INTERVAL=${INTERVAL:-5}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ROUNDS=${ROUNDS:-5}
SECRET=bench-secret-bench-secret-bench-secret-0123
INTERNAL=bench-internal-token-0123456789
ADMIN=bench-admin-token-0123456789
CRED_ADDR=127.0.0.1:19102
TURNSVC_ADMIN=127.0.0.1:19103
TURNSVC_PORT=3478
COTURN_PORT=3479
PEER_PORT=3480

# On a shared machine, raise everything under test above the neighbours (equally for both
# servers) when allowed to; the figures are still only as quiet as the machine.
PRIO=()
if [ "$(id -u)" = 0 ]; then PRIO=(nice -n -10); fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v turnserver >/dev/null || ! command -v turnutils_uclient >/dev/null; then
	echo "installing coturn (turnserver, turnutils_uclient, turnutils_peer)"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null
fi

echo "building tuturu"
(cd "$ROOT" && go build -o "$WORK/tuturu" ./cmd/tuturu)

export DATA_DIR=$WORK/data INTERNAL_TOKEN=$INTERNAL ADMIN_TOKEN=$ADMIN LOG_LEVEL=warn OTEL_SDK_DISABLED=true
CREDSVC_ADDR=$CRED_ADDR TURN_SECRET=$SECRET "${PRIO[@]}" taskset -c "$CLIENT_CPU" "$WORK/tuturu" credsvc 2>"$WORK/credsvc.log" &
PIDS+=($!)
TURNSVC_ADDR=$TURNSVC_ADMIN CREDSVC_URL=http://$CRED_ADDR TURN_LISTEN_HOST=127.0.0.1 EXTERNAL_IP=127.0.0.1 \
	TURN_PORT=$TURNSVC_PORT TURN_MIN_PORT=41000 TURN_MAX_PORT=44999 TURN_ALLOW_PEERS=127.0.0.0/8 \
	TURN_USER_QUOTA=100000 TURN_MAX_ALLOCATIONS=100000 TURN_UDP_SOCKETS=1 TURN_DRAIN_TIMEOUT=1s \
	"${PRIO[@]}" taskset -c "$SERVER_CPU" "$WORK/tuturu" turnsvc 2>"$WORK/turnsvc.log" &
TURNSVC_PID=$!
PIDS+=($TURNSVC_PID)
"${PRIO[@]}" taskset -c "$SERVER_CPU" turnserver -n --listening-ip=127.0.0.1 --listening-port=$COTURN_PORT --relay-ip=127.0.0.1 \
	--min-port=45000 --max-port=48999 --use-auth-secret --static-auth-secret=$SECRET --realm=tuturu \
	--allow-loopback-peers --no-cli --no-tls --no-dtls --user-quota=0 --total-quota=0 --log-file=stdout \
	--simple-log --no-stdout-log >"$WORK/coturn.log" 2>&1 &
COTURN_PID=$!
PIDS+=($COTURN_PID)
# The echo peer is on 127.0.0.2: 127.0.0.1 is turnsvc's own address, which relays reach on relay
# ports only.
"${PRIO[@]}" taskset -c "$CLIENT_CPU" turnutils_peer -L 127.0.0.2 -p $PEER_PORT >"$WORK/peer.log" 2>&1 &
PIDS+=($!)

# wait for credsvc to answer, then issue one credential
for _ in $(seq 100); do
	if curl -fsS -o /dev/null -H 'Content-Type: application/json' -H "Authorization: Bearer $INTERNAL" \
		-d '{}' "http://$CRED_ADDR/tuturu.cred.v1.CredentialService/Issue" 2>/dev/null; then break; fi
	sleep 0.1
done
CRED=$(curl -fsS -H 'Content-Type: application/json' -H "Authorization: Bearer $INTERNAL" \
	-d '{"participantId":"bench"}' "http://$CRED_ADDR/tuturu.cred.v1.CredentialService/Issue")
USERNAME=$(jq -r .username <<<"$CRED")
PASSWORD=$(jq -r .password <<<"$CRED")
sleep 0.5

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run_load NAME PORT PID → prints one result line and stores it in $WORK/NAME.results
run_load() {
	local name=$1 port=$2 pid=$3
	local c0 c1 t0 t1 out send recv lost
	c0=$(cpu_ticks "$pid")
	t0=$(date +%s.%N)
	out=$("${PRIO[@]}" taskset -c "$CLIENT_CPU" timeout 300 turnutils_uclient -p "$port" -u "$USERNAME" -w "$PASSWORD" \
		-e 127.0.0.2 -r $PEER_PORT -m "$CLIENTS" -n "$MSGS" -l "$LEN" -z "$INTERVAL" -c -X 127.0.0.1 2>&1)
	t1=$(date +%s.%N)
	c1=$(cpu_ticks "$pid")
	send=$(grep -o 'tot_send_msgs=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2)
	recv=$(grep -o 'tot_recv_msgs=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2)
	lost=$(grep -o 'Total lost packets [0-9]* ([0-9.]*%)' <<<"$out" | tail -1)
	if [ -z "$send" ] || [ -z "$recv" ]; then
		echo "$name: turnutils_uclient failed:"; echo "$out" | tail -20; exit 1
	fi
	# every datagram crosses the relay twice: client→peer and peer→client
	awk -v n="$name" -v s="$send" -v r="$recv" -v c=$((c1 - c0)) -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" -v lost="$lost" 'BEGIN {
		relayed = s + r; secs = t1 - t0; cpu = c / hz
		loss = (s - r) / s * 100
		printf "%-8s relayed=%d in %.2fs = %.0f pkt/s  loss=%.2f%% (%s)  server cpu=%.2fs  cpu/pkt=%.2fus\n", n, relayed, secs, relayed / secs, loss, lost, cpu, cpu / relayed * 1e6
	}' | tee -a "$WORK/$name.results"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (a busy machine makes these figures noisy)"
echo "offered load: $CLIENTS sessions x $((1000 / INTERVAL)) pkt/s x $LEN B, $MSGS messages each, servers on CPU $SERVER_CPU, client+peer on CPU $CLIENT_CPU"
for round in $(seq "$ROUNDS"); do
	echo "round $round"
	run_load coturn $COTURN_PORT $COTURN_PID
	run_load turnsvc $TURNSVC_PORT $TURNSVC_PID
done

# median NAME FIELD: the median over the rounds of one field (cpu/pkt=, loss=, or pps)
median() {
	local vals
	case $2 in
	pps) vals=$(grep -o '= [0-9]* pkt/s' "$WORK/$1.results" | awk '{print $2}') ;;
	*) vals=$(grep -o "$2[0-9.]*" "$WORK/$1.results" | cut -d= -f2) ;;
	esac
	sort -g <<<"$vals" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
summary() { echo "$1 $(median "$1" cpu/pkt=) $(median "$1" loss=) $(median "$1" pps)"; }
read -r _ co_cpu co_loss co_pps < <(summary coturn)
read -r _ tu_cpu tu_loss tu_pps < <(summary turnsvc)
echo
echo "median over $ROUNDS rounds:"
printf "  coturn : %.0f pkt/s, loss %.3f%%, %.3f us CPU per relayed packet\n" "$co_pps" "$co_loss" "$co_cpu"
printf "  turnsvc: %.0f pkt/s, loss %.3f%%, %.3f us CPU per relayed packet\n" "$tu_pps" "$tu_loss" "$tu_cpu"
# Other work on a shared machine moves both servers' figures from round to round; the ratio
# within a round (same minute, same neighbours) is the steadier comparison.
ratios=$(paste -d' ' <(grep -o 'cpu/pkt=[0-9.]*' "$WORK/turnsvc.results" | cut -d= -f2) \
	<(grep -o 'cpu/pkt=[0-9.]*' "$WORK/coturn.results" | cut -d= -f2) | awk '{printf "%.2f\n", $1 / $2}')
echo "  CPU per packet, turnsvc / coturn, per round: $(tr '\n' ' ' <<<"$ratios")"
echo "  median ratio: $(sort -g <<<"$ratios" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')x (target <= 1.25x, loss no more than coturn's)"

echo
echo "Allocate latency through turnsvc with RPC-backed auth (Validate over Connect on loopback):"
(cd "$ROOT" && go test -run '^$' -bench 'BenchmarkAllocate' -benchtime "${ALLOC_N:-300}x" ./turnsvc/ | grep -E '^Benchmark')
