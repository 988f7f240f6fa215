//go:build tools

// Package helm pins the helm command that hack/build-helm.sh builds.
package helm

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
