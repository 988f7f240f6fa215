//go:build tools

// Package krew pins the krew command that hack/build-krew.sh builds.
package krew

import (
	_ "sigs.k8s.io/krew/cmd/krew"
)
