package v1alpha1_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/slmops/slmops/test/testenv"
)

// env is the real API server, with the CRDs of config/crd/bases installed, that
// the admission tests of this package run against.
var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "envtest: stop: %v\n", err)
	}
	os.Exit(code)
}
