//go:build tools

// Package prometheus pins the commands that hack/build-prometheus.sh builds.
package prometheus

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
