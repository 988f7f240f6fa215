// Package skip makes a test's skip loud. A test that cannot run here calls
// Because with what it did not check and the one command that makes it
// run; besides skipping, the line goes to the file that SLMOPS_SKIP_LOG
// names, which `make test` sets, and `make test` prints every such line in
// one summary block at its end (hack/skipped.sh), pass or fail. A skip is
// never silent.
//
// What it owns: that file's format, one line per skip. What it may not
// touch: anything but the standard library, so that every test package
// (inferd's too, cross-compiled for arm64) can import it.
package skip

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LogEnv names the environment variable with the path of the skip log.
const LogEnv = "SLMOPS_SKIP_LOG"

// Because skips t: notChecked says what the test would have checked and
// why it cannot here, enable the command (or setting) that makes it run.
func Because(t testing.TB, notChecked, enable string) {
	t.Helper()
	line := fmt.Sprintf("%s %s: %s; to run it: %s", pkg(), t.Name(), oneLine(notChecked), oneLine(enable))
	if path := os.Getenv(LogEnv); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = fmt.Fprintln(f, line)
			_ = f.Close()
		}
	}
	t.Skip(line)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// pkg is the test's package folder relative to the module root (go test
// runs a test in its package's folder), or the folder's name.
func pkg() string {
	wd, err := os.Getwd()
	if err != nil {
		return "?"
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if rel, err := filepath.Rel(dir, wd); err == nil {
				return rel
			}
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return filepath.Base(wd)
}
