#!/usr/bin/env bash
# End-to-end: a kind cluster, the image built and loaded, the chart installed, `pytest tests/e2e`,
# then `helm uninstall` and the check that no webhook was left behind.
#
#   hack/e2e.sh                 # everything, deleting the cluster at the end
#   KEEP_CLUSTER=1 hack/e2e.sh  # keep it for debugging (kubectl --context kind-minerguard ...)
#
# Needs docker, kind, kubectl, helm and the project's virtualenv (.venv, with the test extras).
set -euo pipefail

cd "$(dirname "$0")/.."
CLUSTER="${CLUSTER:-minerguard}"
IMAGE="${IMAGE:-ghcr.io/minerguard/minerguard:e2e}"
RELEASE="${RELEASE:-minerguard}"
NAMESPACE="${NAMESPACE:-minerguard}"
PYTHON="${PYTHON:-.venv/bin/python}"
REGISTRY_PUSH=localhost:5001
REGISTRY_IN_CLUSTER=registry.minerguard-e2e-registry.svc.cluster.local:5000
export KUBECONFIG="${KUBECONFIG:-${TMPDIR:-/tmp}/minerguard-e2e-kubeconfig}"

log() { printf '\n==> %s\n' "$*"; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "hack/e2e.sh: $tool is not installed" >&2; exit 2; }
done

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    log "failed (exit $rc): state for the log"
    kubectl get pods -A -o wide || true
    kubectl get minerdetections -A || true
    kubectl -n "$NAMESPACE" logs -l app.kubernetes.io/instance="$RELEASE" --all-containers --tail=100 --prefix || true
  fi
  if [[ -z "${KEEP_CLUSTER:-}" ]]; then
    kind delete cluster --name "$CLUSTER" || true
  fi
  exit $rc
}
trap cleanup EXIT

log "kind cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config kind-config.yaml --wait 120s
fi
kind export kubeconfig --name "$CLUSTER"

log "image $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "in-cluster registry with the e2e images"
kubectl apply -f tests/data/e2e/registry.yaml
kubectl -n minerguard-e2e-registry rollout status deployment/registry --timeout=180s
for target in miner benign; do
  ref="$REGISTRY_PUSH/e2e/$target-entrypoint:1"
  docker build --target "$target" -t "$ref" tests/data/e2e/admission-image-entrypoint/image
  docker push "$ref"
done

log "helm install $RELEASE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=privileged --overwrite
helm upgrade --install "$RELEASE" charts/minerguard \
  --namespace "$NAMESPACE" \
  --values tests/data/e2e/values.yaml \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
  --set "webhook.insecureRegistries[0]=$REGISTRY_IN_CLUSTER" \
  --set "webhook.registryAllowedNetworks[0]=10.96.0.0/12" \
  --wait --timeout 5m
helm test "$RELEASE" --namespace "$NAMESPACE" --logs

log "pytest tests/e2e"
export MINERGUARD_E2E_NAMESPACE="$NAMESPACE" MINERGUARD_E2E_RELEASE="$RELEASE"
export MINERGUARD_E2E_REGISTRY="$REGISTRY_IN_CLUSTER"
"$PYTHON" -m pytest tests/e2e -m e2e -p no:kmock -v --timeout=600 \
  --ignore=tests/e2e/test_uninstall.py

log "helm uninstall $RELEASE"
helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --timeout 3m
MINERGUARD_E2E_UNINSTALLED=1 "$PYTHON" -m pytest tests/e2e/test_uninstall.py -m e2e -p no:kmock -v
