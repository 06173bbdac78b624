#!/usr/bin/env bash
# Builds the development-only Helm CLI (helm.sh/helm/v3/cmd/helm, at the version go.mod pins) that the chart
# tests (tests/chart.rs) run. No prebuilt helm binary is reachable from this project's machines; the Go module
# proxy is, so helm is compiled from its Go module like the control plane in tests/control-plane/.
#
#   helm=$(bash tests/helm/build.sh)
#
# The binary goes to ${CARGO_TARGET_DIR:-$HOME/.cache/passwordsafe-operator/target}/helm/helm.
# It is rebuilt only when go.mod, go.sum, tools.go, this script or the Go version changed since the last
# build (a hash of them is kept next to the binary).
# Progress goes to stderr; the binary's path is the last (and only) line on stdout.
# Uses the normal Go module cache and build cache, so rebuilds are fast.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../go-build.sh"
go_build_prepare helm

# The same -X flags as Helm's own Makefile: the release version (otherwise `helm version` says only "v3.22"),
# and the Kubernetes version of the client-go it is built with (helm's Makefile: client-go v0.X.Y means
# Kubernetes 1.X), which `helm template` and `helm lint` report as .Capabilities.KubeVersion when no cluster is
# asked.
# (go.mod lines are `require MODULE VERSION` or, inside a require block, `MODULE VERSION`.)
required() { awk -v m="$1" '$1 == "require" { $1 = "" ; $0 = $0 } $1 == m { print $2; exit }' go.mod; }
helm_version="$(required helm.sh/helm/v3)"
client_go="$(required k8s.io/client-go)"
if [[ -z "$helm_version" || -z "$client_go" ]]; then
	echo "build.sh: cannot find the helm.sh/helm/v3 or k8s.io/client-go version in go.mod" >&2
	exit 1
fi
k8s_minor="${client_go#v0.}"; k8s_minor="${k8s_minor%%.*}"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

echo "helm: building helm $helm_version (Kubernetes 1.$k8s_minor client libraries) into $bin" >&2
echo "helm: (the first build downloads the modules and compiles for a few minutes; later builds reuse the Go caches)" >&2
# CGO_ENABLED=0 as in Helm's Makefile: a static binary, no C toolchain needed. The package is named by import
# path, so the version comes from this module's go.mod and go.sum (default -mod=readonly: a mismatch fails
# instead of editing them).
CGO_ENABLED=0 go_build helm.sh/helm/v3/cmd/helm "$ldflags"
