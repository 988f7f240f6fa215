//go:build tools

// Package flux pins the commands that hack/build-flux.sh builds.
package flux

import (
	_ "github.com/fluxcd/kustomize-controller"
	_ "github.com/fluxcd/source-controller"
)
