#!/usr/bin/env bash
# Call jumpgate with curl: the OpenAI-compatible chat API, the same call streamed as server-sent events,
# the native API, and the model list.
#
#   clients/examples/curl.sh [URL] [MODEL]
#
# URL defaults to $JUMPGATE_URL, then http://127.0.0.1:8080; MODEL to $JUMPGATE_MODEL, then llama3-8b.
# Set JUMPGATE_API_KEY to send it as a bearer token.
set -euo pipefail

url="${1:-${JUMPGATE_URL:-http://127.0.0.1:8080}}"
url="${url%/}"
model="${2:-${JUMPGATE_MODEL:-llama3-8b}}"
auth=()
if [[ -n "${JUMPGATE_API_KEY:-}" ]]; then
  auth=(-H "authorization: Bearer ${JUMPGATE_API_KEY}")
fi

echo "== chat completion (headers and body)"
curl -sS --fail-with-body -i "${auth[@]}" "$url/v1/chat/completions" \
  -H 'content-type: application/json' \
  -d '{"model": "'"$model"'", "messages": [{"role": "user", "content": "Name three rivers in Europe."}], "max_tokens": 32}'
echo

echo "== the same, streamed (server-sent events; the last one is the [DONE] marker)"
curl -sS --fail-with-body -N "${auth[@]}" "$url/v1/chat/completions" \
  -H 'content-type: application/json' \
  -d '{"model": "'"$model"'", "messages": [{"role": "user", "content": "Name three rivers in Europe."}], "max_tokens": 32, "stream": true}'

echo "== native API: canonical parameter names under \"parameters\""
curl -sS --fail-with-body "${auth[@]}" "$url/v1/generate" \
  -H 'content-type: application/json' \
  -d '{"model": "'"$model"'", "inputs": "Name three rivers in Europe.", "parameters": {"max_new_tokens": 32, "top_k": 40}}'
echo

echo "== models"
curl -sS --fail-with-body "${auth[@]}" "$url/v1/models"
echo
