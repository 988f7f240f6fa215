package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/slmops/slmops/inferd/engine/check"
)

// checkUsage is the help of `inferd check`.
const checkUsage = `Usage: inferd check [--context N] [--concurrency N] FILE...

Reads each GGUF file's header and metadata (not its weights) and says whether
this build runs it: the architecture, each tensor type, the model's shape,
the tokenizer and the context; and estimates its memory: the weights (mapped
from the file) and the KV cache of one sequence at the context. With
--concurrency N (an SLMModel's spec.runtime.maxConcurrentRequests) it adds
the estimate for N sequences at once, each with its own KV cache: the figure
inferd checks against its memory limit before it loads the file, and that
the operator's fit check uses. Exits 1 when a file does not run, with the
reason; a tensor of the wrong shape is only found by a load.
`

// runCheck is `inferd check`; it returns the exit code.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inferd check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, checkUsage); fs.PrintDefaults() }
	context := fs.Int("context", 0, "context length to estimate the KV cache for (0: the model's own)")
	concurrency := fs.Int("concurrency", 1, "sequences served at once, each with its own KV cache (spec.runtime.maxConcurrentRequests)")
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
	if *concurrency < 1 {
		fmt.Fprintf(stderr, "inferd check: --concurrency %d: want at least 1\n", *concurrency)
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
		if *concurrency > 1 && r.ModelContext > 0 {
			fmt.Fprintf(stdout, "  serving    %d sequences at once: %s\n", *concurrency, check.Human(r.Estimate(r.Context, *concurrency)))
		}
		if !r.Runs() {
			code = 1
		}
	}
	return code
}
