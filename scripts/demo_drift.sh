#!/usr/bin/env bash
# When the inputs change: the demo model (make demo's fonts -> digits run, trained here
# if missing) is served digits turned by 30 degrees, as a new scanner might send them.
# Its live monitor flags the traffic and its accuracy estimate drops; the server keeps
# the images; `adapt` adapts the run to them without a label; the result is exported
# as version 2 and promoted to canary; the same kind of traffic sent to the canary is no
# longer shifted and its estimate rises (both estimates marked unreliable: the demo model
# got too few source images wrong for ATC). Embedded data only: the shifted images are made offline from
# scikit-learn's digits (`dann-serve samples --dataset digits-rotated`).
set -euo pipefail

BIN="${VENV:-.venv}/bin"
RUN="${DEMO_RUN:-runs/demo}"
WORK="${DEMO_DRIFT_DIR:-runs/demo-drift}"
SHIFTED="${DEMO_SHIFTED:-digits-rotated}"
GRPC_PORT="${DEMO_GRPC_PORT:-8500}"
REST_PORT="${DEMO_REST_PORT:-8501}"
REST="http://localhost:$REST_PORT"
MODELS="$WORK/models"
CAPTURED="$WORK/captured/dann/1"  # capture's folder for version 1 of model dann

if [ ! -f "$RUN/summary.json" ]; then
    rm -rf "$RUN"
    "$BIN/dann-serve" train --source fonts --target digits --method dann --out "$RUN"
fi
rm -rf "$WORK"
mkdir -p "$MODELS"
# Two versions served side by side, so that a label can name either; stable on 1.
cat >"$MODELS/models.config" <<'EOF'
model_config_list {
  config {
    name: "dann"
    base_path: "/models/dann"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 1 }
  }
}
EOF
"$BIN/dann-serve" export "$RUN" --model-dir "$MODELS" --version 1
# Today's traffic (the shifted set's training images) and tomorrow's (its test images,
# never seen by the adaptation); the true label is in each file name, read by no step.
"$BIN/dann-serve" samples --dataset "$SHIFTED" --split train --count 5000 --out "$WORK/today"
"$BIN/dann-serve" samples --dataset "$SHIFTED" --split test --count 5000 --out "$WORK/tomorrow"

"$BIN/dann-serve" serve --model-dir "$MODELS" --port "$GRPC_PORT" --rest-port "$REST_PORT" \
    --capture-dir "$WORK/captured" --capture-rate 1 >"$WORK/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

# Waits (up to a minute) until the command "$@" succeeds; stops if the server has,
# rather than ask whatever else listens on its ports.
wait_until() {
    for _ in $(seq 120); do
        if ! kill -0 "$server" 2>/dev/null; then
            echo "demo-drift: dann-serve serve stopped:" >&2
            tail -3 "$WORK/serve.log" >&2
            exit 1
        fi
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "demo-drift: gave up waiting for: $*" >&2
    exit 1
}
window_holds() {  # version $1's monitor window holds $2 images
    "$BIN/dann-client" monitor --server "$REST" --version "$1" --json | grep -Eq "\"images\": $2[,}]"
}
files_in() {  # folder $1 holds $2 PNG files
    [ "$(find "$1" -name '*.png' 2>/dev/null | wc -l)" -eq "$2" ]
}
labelled() {  # label $1 names version $2
    "$BIN/dann-client" status --server "localhost:$GRPC_PORT" --label "$1" --json \
        --retries 0 --timeout 2 | grep -Eq "\"version\": $2[,}]"
}
wait_until labelled stable 1

echo
echo "== stable (version 1) answers $SHIFTED traffic; its monitor:"
"$BIN/dann-client" predict "$WORK/today" --server "localhost:$GRPC_PORT" --label stable >/dev/null
wait_until window_holds 1 1000
"$BIN/dann-client" monitor --server "$REST" --version 1
for _ in $(seq 10); do  # the verdict's log line, written at the monitor's next review
    grep "monitor: dann version 1" "$WORK/serve.log" && break
    sleep 0.5
done

echo
echo "== the server kept them: adapt the run to $CAPTURED (no label read)"
wait_until files_in "$CAPTURED" "$(find "$WORK/today" -name '*.png' | wc -l)"
"$BIN/dann-serve" adapt "$RUN" --target "$CAPTURED" --out "$WORK/adapted" --quiet
"$BIN/dann-serve" export "$WORK/adapted" --model-dir "$MODELS"
"$BIN/dann-serve" promote --model-dir "$MODELS" --version 2 --label canary
wait_until labelled canary 2

echo
echo "== new $SHIFTED traffic to canary (version 2) and to stable; the monitor:"
"$BIN/dann-client" predict "$WORK/tomorrow" --server "localhost:$GRPC_PORT" --label canary >/dev/null
"$BIN/dann-client" predict "$WORK/tomorrow" --server "localhost:$GRPC_PORT" --label stable >/dev/null
wait_until window_holds 2 "$(find "$WORK/tomorrow" -name '*.png' | wc -l)"
"$BIN/dann-client" monitor --server "$REST"

echo
echo "== the truth, from the labels (read here only, for the demo):"
"$BIN/dann-serve" evaluate "$RUN" --dataset "$SHIFTED" --split test
"$BIN/dann-serve" evaluate "$WORK/adapted" --dataset "$SHIFTED" --split test
echo "rollback: $BIN/dann-serve promote --model-dir $MODELS --version 1 --label canary"
