#!/usr/bin/env bash
# Builds the development-only control plane (embedded etcd + kube-apiserver +
# kube-controller-manager) used by the end-to-end tests.
#
#   bin=$(bash tests/control-plane/build.sh)
#
# The binary goes to ${CARGO_TARGET_DIR:-$HOME/.cache/passwordsafe-operator/target}/control-plane/control-plane.
# It is rebuilt only when go.mod, go.sum, the *.go files, this script or the Go version
# changed since the last build (a hash of them is kept next to the binary).
# Progress goes to stderr; the binary's path is the last (and only) line on stdout.
# Uses the normal Go module cache and build cache, so rebuilds are fast.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../go-build.sh"
go_build_prepare control-plane

# Stamp the Kubernetes version the module pins into the binary, as Kubernetes'
# own build does, so /version reports it instead of v0.0.0-master.
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ { print $2; exit }' go.mod)"
if [[ -z "$k8s_version" ]]; then
	echo "build.sh: cannot find the k8s.io/kubernetes version in go.mod" >&2
	exit 1
fi
major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

echo "control-plane: building Kubernetes $k8s_version components into $bin" >&2
echo "control-plane: (the first build downloads the modules and compiles for several minutes; later builds reuse the Go caches)" >&2
go_build . "$ldflags"
