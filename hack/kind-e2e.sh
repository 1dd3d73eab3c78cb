#!/usr/bin/env bash
# `make kind-e2e`: Warden end to end in a throwaway kind cluster (docs/kind-e2e.md).
#
#   1. create a kind cluster (or reuse one of the same name),
#   2. build the image from this tree (Dockerfile) and load it into the node,
#   3. install config/default through the overlay test/e2e/kind/ (image warden:e2e, test OIDC
#      settings), wait for the controller to roll out,
#   4. deploy PostgreSQL, MinIO and a static OIDC issuer (test/e2e/kind/deps.yaml),
#   5. run the suite test/e2e/kind/ (vitest, test/e2e/kind/vitest.config.ts) against the cluster,
#   6. on failure, save diagnostics; delete the cluster unless KEEP_CLUSTER=1.
#
# Where Docker (with a reachable daemon), kind or kubectl is missing, it says so and exits 0 without
# doing anything: the suite cannot run there. WARDEN_KIND_E2E_REQUIRED=1 makes that an error (CI
# machines that are meant to run it).
#
# Settings (environment): KIND_CLUSTER (default warden-e2e), KIND_NODE_IMAGE (kind's default when
# unset), KEEP_CLUSTER=1, IMAGE (default warden:e2e — the overlay expects this name),
# WARDEN_E2E_LOG_DIR (default a fresh directory under /tmp), PSQL (default psql on PATH).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CLUSTER=${KIND_CLUSTER:-warden-e2e}
IMAGE=${IMAGE:-warden:e2e}
PSQL=${PSQL:-psql}

say() { printf 'kind-e2e: %s\n' "$*" >&2; }

skip() {
  say "SKIPPED: $1"
  say "  the kind end-to-end suite needs Docker (daemon running), kind, kubectl and psql; see docs/kind-e2e.md"
  if [[ "${WARDEN_KIND_E2E_REQUIRED:-0}" == 1 ]]; then
    say "WARDEN_KIND_E2E_REQUIRED=1: failing instead of skipping"
    exit 1
  fi
  exit 0
}

# --- 0. preflight: everything this needs, or a clean skip ---------------------------------------
command -v docker >/dev/null 2>&1 || skip "docker is not installed"
command -v timeout >/dev/null 2>&1 || skip "timeout (coreutils) is not installed"
timeout 30 docker info >/dev/null 2>&1 || skip "docker is installed but its daemon is not reachable (docker info fails)"
command -v kind >/dev/null 2>&1 || skip "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
command -v kubectl >/dev/null 2>&1 || skip "kubectl is not installed"
command -v "$PSQL" >/dev/null 2>&1 || skip "psql (the PostgreSQL client) is not installed"
[[ -x node_modules/.bin/node ]] || { say "node_modules is missing: run npm ci first"; exit 1; }
if [[ "$IMAGE" != "warden:e2e" ]]; then
  say "IMAGE must stay warden:e2e: test/e2e/kind/kustomization.yaml deploys that name"
  exit 1
fi

LOG_DIR=${WARDEN_E2E_LOG_DIR:-$(mktemp -d /tmp/warden-kind-e2e.XXXXXX)}
mkdir -p "$LOG_DIR"
export WARDEN_E2E_LOG_DIR=$LOG_DIR
KUBECONFIG_FILE="$LOG_DIR/kubeconfig"
say "logs and kubeconfig in $LOG_DIR"

created=0
status=1
diagnostics() {
  say "collecting diagnostics into $LOG_DIR/diagnostics"
  mkdir -p "$LOG_DIR/diagnostics"
  local k=(kubectl --kubeconfig "$KUBECONFIG_FILE")
  "${k[@]}" get all,connections,accesspolicies,recordingpolicies,sessions -A -o wide >"$LOG_DIR/diagnostics/objects.txt" 2>&1 || true
  "${k[@]}" get connections -A -o yaml >"$LOG_DIR/diagnostics/connections.yaml" 2>&1 || true
  "${k[@]}" get events -A --sort-by=.lastTimestamp >"$LOG_DIR/diagnostics/events.txt" 2>&1 || true
  "${k[@]}" logs -n warden-system -l app.kubernetes.io/component=controller --tail=-1 --prefix >"$LOG_DIR/diagnostics/controller.log" 2>&1 || true
  "${k[@]}" logs -n warden-e2e -l app.kubernetes.io/component=gateway --tail=-1 --prefix >"$LOG_DIR/diagnostics/gateways.log" 2>&1 || true
}
finish() {
  if [[ $status -ne 0 && -f "$KUBECONFIG_FILE" ]]; then diagnostics; fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then
    say "KEEP_CLUSTER=1: cluster $CLUSTER kept (kubectl --kubeconfig $KUBECONFIG_FILE ...; kind delete cluster --name $CLUSTER)"
  elif [[ $created == 1 ]]; then
    say "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  if [[ $status -eq 0 ]]; then say "PASSED"; else say "FAILED (exit $status); logs in $LOG_DIR"; fi
}
trap 'status=$?; finish' EXIT

# --- 1. cluster ----------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "reusing kind cluster $CLUSTER"
else
  say "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
  created=1
fi
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
export KUBECONFIG=$KUBECONFIG_FILE
kubectl version >"$LOG_DIR/kubectl-version.txt"

# --- 2. image ------------------------------------------------------------------------------------
say "building $IMAGE from $ROOT/Dockerfile"
docker build -t "$IMAGE" "$ROOT" >"$LOG_DIR/docker-build.log" 2>&1 || { tail -40 "$LOG_DIR/docker-build.log" >&2; exit 1; }
say "loading $IMAGE into the kind node"
kind load docker-image "$IMAGE" --name "$CLUSTER"

# --- 3. Warden from config/default ---------------------------------------------------------------
say "installing config/default (overlay test/e2e/kind)"
kubectl apply --server-side --force-conflicts -k test/e2e/kind
kubectl wait --for=condition=Established --timeout=60s crd --all
kubectl rollout status deployment/warden-controller -n warden-system --timeout=180s

# --- 4. PostgreSQL, MinIO, OIDC issuer -----------------------------------------------------------
say "deploying PostgreSQL, MinIO and the test OIDC issuer (test/e2e/kind/deps.yaml)"
kubectl apply --server-side -f test/e2e/kind/deps.yaml
kubectl rollout status deployment/postgres -n warden-e2e --timeout=240s
kubectl rollout status deployment/minio -n warden-e2e --timeout=240s

# --- 5. the suite --------------------------------------------------------------------------------
say "running test/e2e/kind against $CLUSTER"
WARDEN_E2E_KUBECONFIG=$KUBECONFIG_FILE WARDEN_E2E_KUBECTL=$(command -v kubectl) WARDEN_E2E_PSQL=$(command -v "$PSQL") \
  node_modules/.bin/node node_modules/vitest/vitest.mjs run --config test/e2e/kind/vitest.config.ts
