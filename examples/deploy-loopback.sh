#!/usr/bin/env bash
# The documented SSDDL deployment on Flower, run end to end on 127.0.0.1:
#   1. keys: participant identities + roster, TLS certificates + SuperNode keys,
#      an app-signing key and the trusted-entities file, the app's signature;
#   2. a TLS SuperLink with SuperNode authentication, three registered SuperNodes on
#      distinct ports, each running only apps signed by the trusted key; a fourth SuperNode
#      whose key was never registered is refused (exit code 305);
#   3. a changed copy of the app, signed by another key, pushed with `flwr run`:
#      every SuperNode refuses it and none of its code runs;
#   4. `flwr run` of the signed app (prg with double masking, 2 rounds); SuperNode 3 is
#      killed (SIGKILL) in round 0, after its upload and before the unmask step;
#   5. teardown: every process stopped by its pid's process group, even on failure.
#
# Usage: examples/deploy-loopback.sh [WORKDIR]
#   WORKDIR (kept afterwards) receives keys, logs and the run's records; without it a
#   temporary directory is used and removed. Needs `ssddl`, `flwr`, `flower-superlink` and
#   `python` on PATH (the virtualenv of `pip install -e '.[flower]'`).
#   DEPLOY_WAIT_LIMIT: the longest any one wait may take, in seconds (default 600).
# Exit status: 0 when every step did what it should; non-zero otherwise (the step is named).
set -euo pipefail

APP=$(cd "$(dirname "$0")/flower-app" && pwd)
VENV_BIN=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin    # `make test` installs here
if ! command -v ssddl >/dev/null && [ -x "$VENV_BIN/ssddl" ]; then PATH=$VENV_BIN:$PATH; fi
for tool in ssddl flwr flower-superlink python setsid ps; do
    command -v "$tool" >/dev/null || {
        echo "deploy-loopback: $tool not found: activate the virtualenv of pip install -e '.[flower]'" >&2
        exit 2
    }
done
if [ $# -gt 0 ]; then
    mkdir -p "$1"
    WORK=$(cd "$1" && pwd)
    KEEP=1
else
    WORK=$(mktemp -d)
    KEEP=0
fi
LIMIT=${DEPLOY_WAIT_LIMIT:-600}
PIDS=()

say() { printf '== [%4ss] %s\n' "$SECONDS" "$*"; }
fail() { printf 'deploy-loopback: %s\n' "$*" >&2; exit 1; }

running() {  # is process $1 alive (and not a zombie)?
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ "${state:0:1}" != Z ]
}

stop_group() {  # signal the process group led by $1 ($2: TERM by default), SIGKILL after 10 s
    local pid=$1 n=0
    kill -"${2:-TERM}" -- "-$pid" 2>/dev/null || true
    while running "$pid" && [ $n -lt 50 ]; do sleep 0.2; n=$((n + 1)); done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

teardown() {
    local rc=$? i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_group "${PIDS[i]}"; done
    if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; fi
    if [ "$rc" = 0 ]; then say "done: every process stopped"; fi
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

start() {  # start NAME CMD...: CMD in its own session, output in logs/NAME.log; pid in $LAST
    local name=$1
    shift
    setsid "$@" >"$WORK/logs/$name.log" 2>&1 </dev/null &
    LAST=$!
    PIDS+=("$LAST")
}

wait_for() {  # wait_for WHAT CMD...: poll CMD every second, at most $LIMIT s
    local what=$1 begin=$SECONDS
    shift
    until "$@"; do
        if ((SECONDS - begin > LIMIT)); then fail "timed out after $LIMIT s waiting for $what"; fi
        sleep 1
    done
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ended() { ! running "$1"; }

cd "$WORK"
mkdir -p keys tls signing signatures flwr-home records logs
read -r LINK_PORT NODE_PORT_1 NODE_PORT_2 NODE_PORT_3 INTRUDER_PORT < <(python -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
NODE_PORTS=("$NODE_PORT_1" "$NODE_PORT_2" "$NODE_PORT_3")
export FLWR_HOME=$WORK/flwr-home FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1

say "1. keys, certificates and the app's signature in $WORK"
ssddl keys gen --participants 3 --out keys              # participant-<id>.key (0600), roster.json
ssddl keys certs --out tls --supernodes 4               # ca.crt, server.pem/.key, supernode-<i>(.pub)
ssddl keys app-key --out signing                        # app-signing.key (0600), .pub, trusted-entities.yaml
ssddl keys sign-app --app "$APP" --key signing/app-signing.key --out signatures
printf '[superlink]\ndefault = "tls"\n\n[superlink.tls]\naddress = "127.0.0.1:%s"\nroot-certificates = "%s"\n' \
    "$LINK_PORT" "$WORK/tls/ca.crt" > "$FLWR_HOME/config.toml"

say "2. SuperLink on 127.0.0.1:$LINK_PORT, three SuperNodes that run only signed apps, one intruder"
start superlink flower-superlink --ssl-ca-certfile tls/ca.crt --ssl-certfile tls/server.pem \
    --ssl-keyfile tls/server.key --enable-supernode-auth \
    --host 127.0.0.1 --port "$LINK_PORT" --disable-runtime-dependency-installation
wait_for "the SuperLink to listen on port $LINK_PORT" listening "$LINK_PORT"
for i in 1 2 3; do flwr supernode register "tls/supernode-$i.pub" tls; done
for i in 1 2 3; do
    start "supernode-$i" ssddl supernode --app-signatures signatures --heartbeat-interval 10 -- \
        --trusted-entities signing/trusted-entities.yaml \
        --root-certificates tls/ca.crt --superlink "127.0.0.1:$LINK_PORT" \
        --auth-supernode-private-key "tls/supernode-$i" \
        --host 127.0.0.1 --port "${NODE_PORTS[i - 1]}" \
        --node-config "ssddl-identity-key='$WORK/keys/participant-$i.key' ssddl-roster='$WORK/keys/roster.json' ssddl-modes='prg' partition-id=$((i - 1)) num-partitions=3"
    eval "NODE_PID_$i=$LAST"
done
online() { [ "$(flwr supernode list tls 2>/dev/null | grep -c online)" -ge 3 ]; }
wait_for "three SuperNodes online (flwr supernode list tls)" online
# SuperNode key 4 was never registered: the SuperLink refuses it, and it exits
start intruder flower-supernode --root-certificates tls/ca.crt --superlink "127.0.0.1:$LINK_PORT" \
    --auth-supernode-private-key tls/supernode-4 --host 127.0.0.1 --port "$INTRUDER_PORT"
INTRUDER=$LAST
wait_for "the unregistered SuperNode to be refused" ended "$INTRUDER"
grep -q "Exit Code: 305" logs/intruder.log || fail "the unregistered SuperNode was not refused (logs/intruder.log)"
say "   the unregistered SuperNode was refused: Exit Code 305 (logs/intruder.log)"

say "3. a changed copy of the app, signed by a key the SuperNodes do not trust"
cp -r "$APP" tampered-app
cat >>tampered-app/ssddl_flower_app/client_app.py <<EOF

# changed: this copy would read the node's files; the SuperNodes must never run it
open("$WORK/tampered-app-ran", "a").close()
EOF
mkdir -p untrusted
ssddl keys app-key --out untrusted                     # a key no SuperNode trusts
ssddl keys sign-app --app tampered-app --key untrusted/app-signing.key --out signatures
start flwr-run-tampered flwr run tampered-app tls --stream \
    --run-config "roster='$WORK/keys/roster.json'"
TAMPERED=$LAST
refused() { grep -q "FAB verification failed" "logs/supernode-$1.log"; }
for i in 1 2 3; do wait_for "SuperNode $i to refuse the changed app" refused "$i"; done
RUN_ID=$(grep -o 'started run [0-9]*' logs/flwr-run-tampered.log | grep -o '[0-9]*$')
flwr stop "$RUN_ID" tls >/dev/null 2>&1 || true      # it may have ended already
stop_group "$TAMPERED"
[ ! -e tampered-app-ran ] || fail "the changed app's code ran on a SuperNode"
say "   refused by every SuperNode: FAB verification failed (logs/supernode-<i>.log)"

say "4. flwr run of the signed app; SuperNode 3 is killed in round 0"
cat >run.toml <<EOF
roster = "$WORK/keys/roster.json"
mode = "prg"
num-server-rounds = 2
consistency = true
threshold = 2
max-colluders = 0
stage-timeout = 120.0
discovery-timeout = 300.0
poll-interval = 0.25
record-dir = "$WORK/records"
pause-kind = "unmask_request"
pause-round = 0
pause-file = "$WORK/go"
EOF
start flwr-run flwr run "$APP" tls --stream --run-config run.toml
RUN=$LAST
paused_or_ended() { [ -e go.paused ] || ended "$RUN"; }
wait_for "round 0's unmask request (the ServerApp pauses there)" paused_or_ended
[ -e go.paused ] || fail "the run ended before round 0's unmask request (logs/flwr-run.log)"
stop_group "$NODE_PID_3" KILL
touch go
wait_for "the run to end" ended "$RUN"
wait "$RUN" || fail "flwr run exited with $? (logs/flwr-run.log)"
[ -e records/result.json ] || fail "the run wrote no records/result.json (logs/flwr-run.log)"
python - <<'EOF'
import json
rounds = [json.loads(line) for line in open("records/rounds.jsonl")]
result = json.load(open("records/result.json"))
for r in rounds:
    print(f"   round {r['round']}: contributors {r['members']}, applied {r['applied']}")
last = max(result["central"], key=int)
print(f"   accuracy after the last round: {result['central'][last]['accuracy']:.3f}")
if [r["members"] for r in rounds] != [[1, 2, 3], [1, 2]]:
    raise SystemExit("deploy-loopback: unexpected contributors")
EOF

say "5. teardown"
