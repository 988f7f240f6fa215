package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/slmops/slmops/inferd/engine/check"
)

// checkUsage is the help of `inferd check`.
const checkUsage = `Usage: inferd check [--context N] FILE...

Reads each GGUF file's header and metadata (not its weights) and says whether
this build runs it: the architecture, each tensor type, the model's shape,
the tokenizer and the context; and estimates its memory: the weights (mapped
from the file) and the KV cache of one sequence at the context. Exits 1 when
a file does not run, with the reason; a tensor of the wrong shape is only
found by a load.
`

// runCheck is `inferd check`; it returns the exit code.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inferd check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, checkUsage); fs.PrintDefaults() }
	context := fs.Int("context", 0, "context length to estimate the KV cache for (0: the model's own)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	code := 0
	for _, path := range fs.Args() {
		r, err := check.Check(path, *context)
		if err != nil {
			fmt.Fprintf(stdout, "%s: does not run: %v\n", path, err)
			code = 1
			continue
		}
		fmt.Fprint(stdout, r.String())
		if !r.Runs() {
			code = 1
		}
	}
	return code
}
