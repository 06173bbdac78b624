//go:build tools

// Package tools pins the Helm CLI this project's chart tests run: `go build helm.sh/helm/v3/cmd/helm` from
// this module uses the version required in go.mod, checked against go.sum. The build tag keeps this file out
// of every build; it exists so that `go mod tidy` keeps helm and all of its dependencies in go.mod/go.sum.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
