# Shared by tests/control-plane/build.sh and tests/helm/build.sh (sourced, not run): build a development-only
# Go binary into ${CARGO_TARGET_DIR:-$HOME/.cache/passwordsafe-operator/target}/NAME/NAME, once, and again only
# when go.mod, go.sum, the *.go files, the calling script or the Go version change (a hash of them is kept
# next to the binary). Progress goes to stderr; the binary's path is the last (and only) line on stdout.
# Uses the normal Go module cache and build cache, so rebuilds are fast.

# go_build_prepare NAME: sets bin, enters the caller's directory, and exits printing $bin when it is up to date.
go_build_prepare() {
	name="$1"
	local src_dir target_dir out_dir
	src_dir="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
	target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/passwordsafe-operator/target}"
	out_dir="$target_dir/$name"
	if ! command -v go >/dev/null 2>&1; then
		echo "build.sh: 'go' not found in PATH (Go >= 1.26 is needed)" >&2
		exit 1
	fi
	mkdir -p "$out_dir"
	out_dir="$(cd "$out_dir" && pwd)" # a relative CARGO_TARGET_DIR is relative to the caller's directory
	bin="$out_dir/$name"
	stamp="$out_dir/$name.sources.sha256"
	cd "$src_dir"
	hash="$({
		go version
		LC_ALL=C ls go.mod go.sum build.sh *.go ../go-build.sh | LC_ALL=C sort | xargs sha256sum
	} | sha256sum | cut -d' ' -f1)"
	if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
		echo "$name: up to date" >&2
		echo "$bin"
		exit 0
	fi
}

# go_build PACKAGE LDFLAGS: builds PACKAGE (as `go build` names it) into $bin and records the hash.
go_build() {
	local tmp="$bin.tmp.$$" start=$SECONDS
	trap 'rm -f "'"$tmp"'"' EXIT
	# go build -v lists each package as it is compiled (on stderr).
	nice -n 10 go build -v -trimpath -buildvcs=false -ldflags "$2" -o "$tmp" "$1"
	mv -f "$tmp" "$bin"
	echo "$hash" >"$stamp"
	echo "$name: built in $((SECONDS - start))s" >&2
	echo "$bin"
}
