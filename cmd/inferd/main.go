// Command inferd runs one quantized model on one edge node: it fetches and
// verifies the model the operator names in INFERD_CONFIG into the node
// cache, loads it, self-tests it, and serves an OpenAI-compatible API with
// probes, /status and /metrics. See the README's inferd section.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/daemon"
	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/fetch/redact"
	"github.com/slmops/slmops/inferd/report"
	// The architectures this build runs: llama and qwen2, and the bigram
	// test architecture that the tests and the demo generate.
	_ "github.com/slmops/slmops/inferd/engine/bigram"
	_ "github.com/slmops/slmops/inferd/engine/llama"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		os.Exit(runCheck(os.Args[2:], os.Stdout, os.Stderr))
	}
	var (
		listen          = flag.String("listen", "", "address to serve on (default \":<port from INFERD_CONFIG>\")")
		terminationLog  = flag.String("termination-log", "/dev/termination-log", "file for the pod's termination message (\"\" for none)")
		grace           = flag.Duration("shutdown-grace", 20*time.Second, "how long requests in flight may run after SIGTERM before they are canceled")
		queueDepth      = flag.Int("queue-depth", -1, "requests that may wait for a generation slot before 429 (default: twice runtime.maxConcurrentRequests)")
		queueTimeout    = flag.Duration("queue-timeout", 30*time.Second, "how long a request waits for a slot before 429")
		maxRequestBytes = flag.Int64("max-request-bytes", 1<<20, "largest request body accepted (413 past it)")
		maxTokens       = flag.Int("max-tokens", 0, "largest max_tokens accepted (default: the context length)")
		downloadRate    = flag.Int64("download-rate", 0, "model download limit in bytes per second (0: unlimited)")
		attemptTimeout  = flag.Duration("download-attempt-timeout", 30*time.Minute, "bound on one download attempt (it resumes after)")
		retryBackoff    = flag.Duration("fetch-retry-backoff", 5*time.Second, "first wait after a failed fetch round; it doubles up to 5 minutes")
		chatTemplate    = flag.String("chat-template", "", "chat template to use instead of the model's own tokenizer.chat_template (or, when it has none or one this build cannot render, the format its markers imply): chatml, llama2, llama3, gemma, phi3 or zephyr")
		reportMarker    = flag.String("report-marker", "", "file that says this pod's self-test report was written, so that a restarted container does not write again (default: slmops-self-test-<namespace>.<pod> in $TMPDIR, the pod's emptyDir /tmp)")
		saDir           = flag.String("service-account-dir", filepath.Dir(report.DefaultTokenFile), "folder of the pod's ServiceAccount token and the cluster's CA (token, ca.crt), for the self-test report")
		verbosity       = flag.Int("v", 0, "log verbosity (1: per-request events)")
		showVersion     = flag.Bool("version", false, "print the version and the architectures this build runs, and exit")
	)
	flag.Parse()
	if *showVersion {
		fmt.Printf("inferd %s (architectures: %v)\n", version, engine.Architectures())
		return
	}
	// The last pass over every log line: no URL's query or userinfo leaves the process.
	log := logr.FromSlogHandler(redact.Handler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.Level(-*verbosity)})))

	cfg, err := config.FromEnv()
	if err != nil {
		fail(*terminationLog, log, err)
	}
	if *queueDepth < 0 {
		*queueDepth = 2 * int(cfg.Runtime.MaxConcurrentRequests)
	}
	memoryLimit, err := config.MemoryLimitFromEnv(os.Getenv)
	if err != nil {
		fail(*terminationLog, log, err)
	}
	opts := daemon.Options{
		Listen: *listen, NodeName: os.Getenv(config.EnvNodeName),
		Authorization: os.Getenv(config.EnvAuthorization), RegistryAuth: []byte(os.Getenv(config.EnvRegistryAuth)),
		APIToken:       os.Getenv(config.EnvAPIToken),
		TerminationLog: *terminationLog, ShutdownGrace: *grace,
		QueueDepth: *queueDepth, QueueTimeout: *queueTimeout, MaxRequestBytes: *maxRequestBytes, MaxTokens: *maxTokens,
		DownloadBytesPerSecond: *downloadRate, DownloadAttemptTimeout: *attemptTimeout, RetryBackoff: *retryBackoff, ChatTemplate: *chatTemplate,
		MemoryLimitBytes: memoryLimit,
		Log:              log.WithValues("node", os.Getenv(config.EnvNodeName)),
	}
	if cfg.Report.Enabled {
		// Never fatal: without a token inferd serves, and the operator
		// sees its readiness and termination message only.
		target := report.TargetFromEnv(os.Getenv)
		target.TokenFile, target.CAFile = filepath.Join(*saDir, filepath.Base(report.DefaultTokenFile)), filepath.Join(*saDir, filepath.Base(report.DefaultCAFile))
		w, err := report.New(target, opts.Log.WithName("report"))
		if err != nil {
			log.Info("Self-test reports are off", "reason", err.Error())
		} else {
			opts.Reporter, opts.ReportMarker = w, *reportMarker
			if opts.ReportMarker == "" {
				// Named by the pod: processes that share a /tmp (a test's
				// process kubelet) keep apart.
				opts.ReportMarker = filepath.Join(os.TempDir(), "slmops-self-test-"+target.Namespace+"."+target.Pod)
			}
		}
	}
	d := daemon.New(cfg, opts)
	log.Info("Starting inferd", "version", version, "architectures", engine.Architectures())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := d.Run(ctx); err != nil {
		if errors.Is(err, daemon.ErrStageFailed) {
			// The daemon wrote the termination message (reason: message).
			log.Info("Staging failed; exiting", "error", err.Error())
			os.Exit(1)
		}
		fail(*terminationLog, log, err)
	}
}

func fail(terminationLog string, log logr.Logger, err error) {
	log.Error(err, "inferd cannot run")
	if terminationLog != "" {
		_ = os.WriteFile(terminationLog, []byte(redact.Text("Error: "+err.Error())+"\n"), 0o644)
	}
	os.Exit(1)
}
