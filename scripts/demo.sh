#!/usr/bin/env bash
# The main job from a fresh clone: train DANN on the embedded fonts -> digits pair,
# export it, serve it locally over TensorFlow Serving's API, and ask dann-client
# about a few target-domain images whose true label is in their file name.
set -euo pipefail

BIN="${VENV:-.venv}/bin"
RUN="${DEMO_RUN:-runs/demo}"
MODELS="${DEMO_MODELS:-models}"
GRPC_PORT="${DEMO_GRPC_PORT:-8500}"
REST_PORT="${DEMO_REST_PORT:-8501}"

rm -rf "$RUN"
"$BIN/dann-serve" train --source fonts --target digits --method dann --out "$RUN"
"$BIN/dann-serve" evaluate "$RUN" --dataset digits --split test
version_dir="$("$BIN/dann-serve" export "$RUN" --model-dir "$MODELS")"
echo "exported $version_dir"
"$BIN/dann-serve" samples --dataset digits --split test --count 12 --out "$RUN/samples"

"$BIN/dann-serve" serve --model-dir "$MODELS" --port "$GRPC_PORT" --rest-port "$REST_PORT" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

# Wait until the server answers for the new version (it loads it in the background).
version="$(basename "$version_dir")"
for _ in $(seq 120); do
    if "$BIN/dann-client" status --server "localhost:$GRPC_PORT" --version "$version" \
        --retries 0 --timeout 2 >/dev/null 2>&1; then
        break
    fi
    sleep 0.5
done

echo "dann-client predict (true label in each file name):"
"$BIN/dann-client" predict "$RUN/samples" --server "localhost:$GRPC_PORT" --version "$version"
