#!/usr/bin/env bash
# The runtime and admission layers on this host, bounded and loopback-only:
#  - layer 2: the agent (without a cluster) catches a simulated miner at exec — a copy of python
#    named xmrig, run for 3 s with miner options, pointing at 127.0.0.1 (nothing listens there);
#  - layer 1: the webhook, served over TLS on 127.0.0.1, refuses a miner pod and admits a benign one.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

echo
echo "-- layer 2 (process start): minerguard agent --no-cluster --duration 8"
if [ "$(id -u)" != 0 ]; then
  echo "   skipped: the agent needs root (proc connector, other processes' /proc)"
else
  cp "$(readlink -f "$(command -v python3)")" "$work/xmrig"
  minerguard agent --no-cluster --duration 8 --output text >"$work/agent.out" 2>"$work/agent.err" &
  agent=$!
  sleep 2
  "$work/xmrig" -c 'import time; time.sleep(3)' --donate-level=1 -o stratum+tcp://127.0.0.1:3333 || true
  wait "$agent" || true
  sed 's/^/   /' "$work/agent.out"
fi

if [ -f webhook/cli.py ]; then
  echo
  echo "-- layer 1 (admission): minerguard webhook on https://127.0.0.1:8443/validate"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
  minerguard webhook --host 127.0.0.1 --port 8443 --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
    >"$work/webhook.log" 2>&1 &
  python - "$work" <<'PY'
import json, ssl, sys, time, urllib.request, uuid
from pathlib import Path
import yaml
work = Path(sys.argv[1])
context = ssl.create_default_context(cafile=str(work / "tls.crt"))  # verify, as the API server does
def review(obj):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "operation": "CREATE",
        "namespace": "default", "name": obj["metadata"]["name"], "object": obj,
        "userInfo": {"username": "demo@example.com"}, "dryRun": True}}
pods = [yaml.safe_load(Path("examples/manifests/miner-pod.yaml").read_text()),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
         "spec": {"containers": [{"name": "web", "image": "nginx", "command": ["nginx", "-g", "daemon off;"]}]}}]
for _ in range(50):
    try:
        urllib.request.urlopen("https://127.0.0.1:8443/healthz", context=context, timeout=1); break
    except OSError:
        time.sleep(0.2)
for pod in pods:
    body = json.dumps(review(pod)).encode()
    request = urllib.request.Request("https://127.0.0.1:8443/validate", body, {"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(request, context=context, timeout=5))["response"]
    verdict = "allowed" if answer["allowed"] else "DENIED: " + answer["status"]["message"]
    print(f"   pod {pod['metadata']['name']}: {verdict}")
PY
fi
