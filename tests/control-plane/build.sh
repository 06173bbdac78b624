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

src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/passwordsafe-operator/target}"
out_dir="$target_dir/control-plane"

if ! command -v go >/dev/null 2>&1; then
	echo "build.sh: 'go' not found in PATH (Go >= 1.26 is needed)" >&2
	exit 1
fi
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)" # a relative CARGO_TARGET_DIR is relative to the caller's directory
bin="$out_dir/control-plane"
stamp="$out_dir/control-plane.sources.sha256"

cd "$src_dir"
hash="$({
	go version
	LC_ALL=C ls go.mod go.sum build.sh *.go | LC_ALL=C sort | xargs sha256sum
} | sha256sum | cut -d' ' -f1)"

if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
	echo "control-plane: up to date" >&2
	echo "$bin"
	exit 0
fi

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
tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT
start=$SECONDS
# go build -v lists each package as it is compiled (on stderr).
nice -n 10 go build -v -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tmp" .
mv -f "$tmp" "$bin"
echo "$hash" >"$stamp"
echo "control-plane: built in $((SECONDS - start))s" >&2
echo "$bin"
