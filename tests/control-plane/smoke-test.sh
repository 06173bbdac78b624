#!/usr/bin/env bash
# Smoke test of the control-plane binary with kubectl: start it, check
# namespaces, garbage collection, namespace deletion, TokenRequest and RBAC,
# then SIGTERM it and check it exits 0. Usage: bash smoke-test.sh [BINARY]
set -uo pipefail
BIN=${1:-$(bash "$(dirname "${BASH_SOURCE[0]}")/build.sh")}
W=$(mktemp -d)
trap 'kill -TERM "$PID" 2>/dev/null; rm -rf "$W"' EXIT
export KUBECONFIG=$W/kubeconfig
fail=0
check() { if [ "$1" = ok ]; then echo "ok: $2"; else echo "FAILED: $2"; fail=1; fi; }
waitgone() { for _ in $(seq 1 120); do kubectl "$@" >/dev/null 2>&1 || return 0; sleep 0.25; done; return 1; }

"$BIN" --kubeconfig "$KUBECONFIG" --log-file "$W/control-plane.log" >"$W/stdout" &
PID=$!
for _ in $(seq 1 240); do [ -s "$W/stdout" ] && break; kill -0 "$PID" 2>/dev/null || break; sleep 0.25; done
grep -q '^control-plane ready kubeconfig=.* server=https://127.0.0.1:[0-9]*$' "$W/stdout" && check ok "ready line: $(cat "$W/stdout")" || { check no "ready line"; exit 1; }

kubectl get ns default >/dev/null && check ok "kubectl get ns" || check no "kubectl get ns"
kubectl create ns smoke >/dev/null
kubectl -n smoke create configmap owner --from-literal=a=b >/dev/null
uid=$(kubectl -n smoke get cm owner -o jsonpath='{.metadata.uid}')
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: child, namespace: smoke, ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: "$uid"}]}
data: {x: "1"}
EOF
kubectl -n smoke delete cm owner >/dev/null
waitgone -n smoke get cm child && check ok "garbage collector deleted the dependent ConfigMap" || check no "garbage collection"

kubectl -n smoke create sa tester >/dev/null
TOKEN=$(kubectl -n smoke create token tester) && check ok "TokenRequest (kubectl create token)" || check no "TokenRequest"
SERVER=$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$W/ca.crt"
T() { kubectl --kubeconfig=/dev/null --server="$SERVER" --certificate-authority="$W/ca.crt" --token="$TOKEN" "$@"; }
[ "$(T auth whoami -o jsonpath='{.status.userInfo.username}')" = system:serviceaccount:smoke:tester ] && check ok "token authenticates as the ServiceAccount" || check no "token authentication"
[ "$(T auth can-i list secrets -n smoke)" = no ] && check ok "RBAC denies the token listing secrets" || check no "RBAC deny"

kubectl delete ns smoke --wait=false >/dev/null
waitgone get ns smoke && check ok "namespace deleted" || check no "namespace deletion"

kill -TERM "$PID"; wait "$PID"; rc=$?
[ "$rc" = 0 ] && check ok "exit 0 on SIGTERM" || check no "exit code $rc on SIGTERM"
[ "$fail" = 0 ] || { echo "log: $W/control-plane.log"; tail -20 "$W/control-plane.log"; }
exit "$fail"
