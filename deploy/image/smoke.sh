#!/usr/bin/env bash
# Build the jumpgate image with podman and smoke-test it: the demo (no config: the embedded SageMaker
# simulator) in a container, then GET /healthz and one POST /v1/chat/completions for model llama3-8b.
#
#   sudo deploy/image/smoke.sh        # after deploy/image/build-base.sh, or with python:3.11-slim pullable
#
# Needs: podman, runc, curl, python3 (to read the JSON answers). Exits non-zero on the first failure, and
# always removes the container it started.
#
# Settings (environment): IMAGE (jumpgate:local), PORT (8080: the host port the gateway listens on, as the
# container shares the host's network; another port is passed as `--port`, and the image's HEALTHCHECK,
# which probes :8080, is then not run), OCI_RUNTIME (runc), PODMAN_PULL (never: the base must be local;
# `missing` to let podman pull python:3.11-slim), SKIP_BUILD (1 to test an existing IMAGE),
# SMOKE_ULIMITS (see below).
set -euo pipefail

cd "$(dirname "$0")/../.."

IMAGE=${IMAGE:-jumpgate:local}
PORT=${PORT:-8080}
OCI_RUNTIME=${OCI_RUNTIME:-runc}
PODMAN_PULL=${PODMAN_PULL:-never}
NAME="jumpgate-smoke-$$"
BASE="http://127.0.0.1:$PORT"

log() { printf 'smoke: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for tool in podman curl python3; do command -v "$tool" >/dev/null || die "$tool not found"; done

# Resource limits for the container. podman's defaults for a rootful container (nofile 1048576, nproc
# 4194304) are above the hard limits of some sandboxes, where raising them needs CAP_SYS_RESOURCE and
# runc then fails with "error setting rlimit type 7: operation not permitted". Lowering is always allowed,
# so ask for the caller's own hard limit of open files and a modest process count.
if [ -z "${SMOKE_ULIMITS+x}" ]; then
  nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
  SMOKE_ULIMITS="--ulimit nofile=$nofile:$nofile --ulimit nproc=4096:4096"
fi
# shellcheck disable=SC2206  # word splitting intended: a list of options
ulimits=($SMOKE_ULIMITS)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  # --isolation=chroot: RUN steps in a chroot, no namespaces or runtime needed for the build itself.
  # --format docker: the OCI image format has no HEALTHCHECK, and podman would drop the Dockerfile's.
  log "podman build --isolation=chroot --format docker -t $IMAGE ."
  podman build --isolation=chroot --format docker --pull="$PODMAN_PULL" -t "$IMAGE" . >&2 \
    || die "podman build failed (is python:3.11-slim there? deploy/image/build-base.sh makes it)"
fi

# What the image says about itself, before running it.
user=$(podman image inspect "$IMAGE" --format '{{.Config.User}}')
entrypoint=$(podman image inspect "$IMAGE" --format '{{json .Config.Entrypoint}}')
health=$(podman image inspect "$IMAGE" --format '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}')
log "image user=$user entrypoint=$entrypoint healthcheck=${health:-none}"
[ "$user" = 10001:10001 ] || die "image user is '$user', expected 10001:10001"
[ -n "$health" ] || die "image has no HEALTHCHECK"

cleanup() {
  local rc=$?
  if podman container exists "$NAME" 2>/dev/null; then
    if [ "$rc" != 0 ]; then
      log "container logs:"
      podman logs "$NAME" 2>&1 | tail -n 40 >&2 || true
    fi
    podman stop -t 10 "$NAME" >/dev/null 2>&1 || true
    podman rm -f "$NAME" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

# Arguments after the image name are appended to the entrypoint (`jumpgate serve --host 0.0.0.0 --port
# 8080`): the demo has no API keys, so a non-loopback bind needs --allow-unauthenticated, and the later
# --port wins. --network host: no CNI bridge or port mapping needed, the gateway is on the host's port.
python3 -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[1])))' "$PORT" 2>/dev/null \
  || die "port $PORT is already in use on this host (PORT=... to pick another)"
args=(--allow-unauthenticated)
[ "$PORT" = 8080 ] || args+=(--port "$PORT")
log "podman run -d --runtime $OCI_RUNTIME --network host ${ulimits[*]} $IMAGE ${args[*]}"
podman run -d --name "$NAME" --runtime "$OCI_RUNTIME" --network host "${ulimits[@]}" "$IMAGE" "${args[@]}" >/dev/null \
  || die "podman run failed"

log "waiting for $BASE/healthz"
ok=0
for _ in $(seq 1 60); do
  running=$(podman inspect "$NAME" --format '{{.State.Running}}' 2>/dev/null || echo false)
  [ "$running" = true ] || die "the container exited: $(podman inspect "$NAME" --format '{{.State.Status}} exit={{.State.ExitCode}}' 2>&1)"
  if curl -fsS -o /dev/null --max-time 2 "$BASE/healthz" 2>/dev/null; then ok=1; break; fi
  sleep 0.5
done
[ "$ok" = 1 ] || die "no answer on $BASE/healthz within 30 s"

health_body=$(curl -fsS --max-time 5 -w '\nHTTP %{http_code}' "$BASE/healthz") || die "GET /healthz failed"
echo "GET /healthz -> $health_body"

uid=$(podman exec "$NAME" id -u) || die "podman exec failed"
echo "process uid in the container: $uid"
[ "$uid" = 10001 ] || die "the gateway runs as uid $uid, expected 10001"

# The image's own HEALTHCHECK command, run once in the container (it probes :8080).
if [ "$PORT" = 8080 ]; then
  hc=$(podman healthcheck run "$NAME" 2>&1) || die "the image's HEALTHCHECK failed: $hc"
  echo "podman healthcheck run: ${hc:-healthy}"
else
  echo "podman healthcheck run: not run (it probes :8080, the gateway serves :$PORT)"
fi

request='{"model": "llama3-8b", "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 32}'
answer=$(curl -sS --max-time 30 -w '\n%{http_code}' -H 'Content-Type: application/json' -d "$request" \
  "$BASE/v1/chat/completions") || die "POST /v1/chat/completions failed"
status=${answer##*$'\n'}
body=${answer%$'\n'*}
echo "POST /v1/chat/completions (llama3-8b) -> HTTP $status"
echo "$body"
[ "$status" = 200 ] || die "chat completion answered HTTP $status"
printf '%s' "$body" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["object"] == "chat.completion", d
choice = d["choices"][0]
assert choice["message"]["role"] == "assistant" and choice["message"]["content"], choice
assert d["usage"]["completion_tokens"] > 0, d["usage"]
print("chat ok: model=%s finish_reason=%s completion_tokens=%d"
      % (d["model"], choice["finish_reason"], d["usage"]["completion_tokens"]))
' || die "chat completion body is not a valid completion"

log "stopping the container (SIGTERM, drain)"
podman stop -t 35 "$NAME" >/dev/null || die "podman stop failed"
code=$(podman inspect "$NAME" --format '{{.State.ExitCode}}')
echo "container stopped, exit code $code"
[ "$code" = 0 ] || die "the gateway exited $code on SIGTERM, expected 0 (graceful drain)"
log "PASS"
