// Package daemon is inferd's life on a node: serve the probes at once, fetch
// and verify the model into the node cache, load it, run the self-test, and
// only then report ready; on SIGTERM stop being ready, finish or cancel the
// requests in flight within a grace period, and leave a termination message
// that says how it went.
//
// What it owns: the order of a node's life, the termination message
// (written with inferd/config's FormatTermination, the format the operator
// parses) and the self-test report (config.FormatReport), handed once to a
// Reporter. What it may not touch: the Kubernetes API beyond that one
// report (readiness never waits for it), and anything outside the node
// cache, its listen address and its termination log.
package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/fetch"
	"github.com/slmops/slmops/inferd/fetch/redact"
	"github.com/slmops/slmops/inferd/selftest"
	"github.com/slmops/slmops/inferd/server"
)

// Reasons inferd is not ready, as /status and the termination message say;
// the operator reads them through config.ParseTermination.
const (
	ReasonFetchFailed      = config.ReasonFetchFailed
	ReasonFetchRetrying    = config.ReasonFetchRetrying
	ReasonOriginRejected   = config.ReasonOriginRejected
	ReasonDigestMismatch   = config.ReasonDigestMismatch
	ReasonInvalidModel     = config.ReasonInvalidModel
	ReasonUnsupported      = config.ReasonUnsupported
	ReasonSelfTestFailed   = config.ReasonSelfTestFailed
	ReasonInsufficientDisk = config.ReasonInsufficientDisk
	// ReasonInsufficientMemory: the model's estimate is more than
	// Options.MemoryLimitBytes.
	ReasonInsufficientMemory = config.ReasonInsufficientMemory
)

// ErrStageFailed is what Run returns when a stager could not stage the
// model; its termination message says why.
var ErrStageFailed = errors.New("staging failed")

// stageRounds is how many fetch rounds a stager tries before it exits, so
// that the kubelet's restart back-off paces the retries and the operator
// sees the reason in the pod's termination message.
const stageRounds = 3

// maxMismatches is how many rounds in a row may end with the origin's
// bytes not hashing to the digest before inferd gives up: one could be a
// transfer that went wrong, three are the origin's file.
const maxMismatches = 3

// Options configure a Daemon beyond what the operator's Config says.
type Options struct {
	// Listen overrides the address (default ":<config.port>").
	Listen string
	// NodeName is the node inferd runs on.
	NodeName string
	// Authorization is the http source's Authorization header.
	Authorization string
	// APIToken, when set, is the bearer token the OpenAI-compatible API
	// requires.
	APIToken string
	// RegistryAuth is a dockerconfigjson for an OCI source.
	RegistryAuth []byte
	// TerminationLog is where the termination message goes ("" for none).
	TerminationLog string
	// ShutdownGrace is how long in-flight requests may run after SIGTERM.
	ShutdownGrace time.Duration
	// QueueDepth, QueueTimeout, MaxRequestBytes, MaxTokens tune the server.
	QueueDepth      int
	QueueTimeout    time.Duration
	MaxRequestBytes int64
	MaxTokens       int
	// DownloadBytesPerSecond limits the download; 0 is unlimited.
	DownloadBytesPerSecond int64
	// DownloadAttemptTimeout bounds one download attempt.
	DownloadAttemptTimeout time.Duration
	// RetryBackoff is the first wait after a failed fetch round (doubling to 5 minutes).
	RetryBackoff time.Duration
	// ChatTemplate overrides the model's chat template.
	ChatTemplate string
	// MemoryLimitBytes is the memory the container may use
	// (config.EnvMemoryLimit); 0 when unknown. A model whose estimate is
	// more fails with ReasonInsufficientMemory before it is loaded, instead
	// of being killed for memory in the middle of its load or its first
	// long request.
	MemoryLimitBytes int64
	// Log never receives secrets, prompts or answers.
	Log logr.Logger
	// Registerer and Gatherer for metrics; a fresh registry when nil.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Ready, when set, is told the address once the listener is open.
	Listening func(addr string)
	// Reporter, when set (config report.enabled and a token mounted),
	// receives the self-test report once, after the self-test.
	Reporter Reporter
	// ReportMarker, when set, is a file in storage that outlives the
	// container but not the pod (the pod's emptyDir /tmp): written once the
	// report is, it keeps a restarted container from writing again, so a
	// crash-looping pod costs one write, not one per restart.
	ReportMarker string
}

// Daemon runs one model on one node.
type Daemon struct {
	cfg  *config.Config
	opts Options
	srv  *server.Server

	// reporting is done when the report's write ended (or never started).
	reporting sync.WaitGroup

	mu      sync.Mutex
	engine  engine.Engine
	message string
	// held is the cached file inferd serves or stages, held against prunes.
	held *fetch.Hold
}

// New returns a Daemon for cfg.
func New(cfg *config.Config, opts Options) *Daemon {
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 20 * time.Second
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 5 * time.Second
	}
	if opts.Listen == "" {
		opts.Listen = fmt.Sprintf(":%d", cfg.Port)
	}
	var blobs http.HandlerFunc
	if cfg.Peers.Serve {
		blobs = (&fetch.Fetcher{CacheDir: cfg.CacheDir}).ServeBlob
	}
	srv := server.New(server.Options{
		ModelName: cfg.Model.Name, Concurrency: int(cfg.Runtime.MaxConcurrentRequests), QueueDepth: opts.QueueDepth,
		QueueTimeout: opts.QueueTimeout, MaxRequestBytes: opts.MaxRequestBytes, MaxTokens: opts.MaxTokens,
		Registerer: opts.Registerer, Gatherer: opts.Gatherer, Log: opts.Log.WithName("server"), Blobs: blobs,
		APIToken: opts.APIToken,
	})
	srv.Update(func(st *server.Status) {
		st.Node = opts.NodeName
		st.Model.Digest, st.Model.Source = cfg.Model.Digest, source(cfg)
	})
	return &Daemon{cfg: cfg, opts: opts, srv: srv}
}

// Server is the HTTP side, for tests and status.
func (d *Daemon) Server() *server.Server { return d.srv }

func source(cfg *config.Config) string {
	if cfg.Model.OCI != "" {
		return "oci://" + cfg.Model.OCI
	}
	return redact.URL(cfg.Model.URL)
}

// Run serves until ctx is done, then shuts down gracefully and returns nil;
// an error means inferd could not start serving at all.
func (d *Daemon) Run(ctx context.Context) error {
	log := d.opts.Log
	ln, err := net.Listen("tcp", d.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", d.opts.Listen, err)
	}
	if d.opts.Listening != nil {
		d.opts.Listening(ln.Addr().String())
	}
	// Cancelling hard ends every request's context: the grace period's end.
	hard, cancelHard := context.WithCancel(context.Background())
	defer cancelHard()
	httpSrv := &http.Server{
		Handler:           d.srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return hard },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	log.Info("Serving probes", "address", ln.Addr().String(), "model", d.cfg.Model.Name, "digest", d.cfg.Model.Digest)

	prepCtx, cancelPrep := context.WithCancel(ctx)
	prepDone := make(chan struct{})
	go func() {
		defer close(prepDone)
		d.prepare(prepCtx)
	}()

	var stageErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		cancelPrep()
		<-prepDone
		return fmt.Errorf("serve: %w", err)
	case <-prepDone:
		if d.cfg.Stage && d.srv.Status().Phase == server.PhaseFailed {
			// A stager that cannot stage exits: its termination message
			// tells the operator why, and the kubelet's back-off paces the
			// retries.
			stageErr = fmt.Errorf("%w: %s", ErrStageFailed, d.summary())
			break
		}
		<-ctx.Done()
	}

	// Shutdown: not ready at once (the endpoints drop the pod), stop
	// accepting, let requests finish within the grace, then cancel them.
	d.srv.SetPhase(server.PhaseShuttingDown, string(server.PhaseShuttingDown), "received a termination signal")
	log.Info("Shutting down", "grace", d.opts.ShutdownGrace)
	cancelPrep()
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), d.opts.ShutdownGrace)
	defer cancelGrace()
	if err := httpSrv.Shutdown(graceCtx); err != nil {
		log.Info("Grace period over; canceling the requests still running")
		cancelHard()
		closeCtx, cancelClose := context.WithTimeout(context.Background(), 5*time.Second)
		_ = httpSrv.Shutdown(closeCtx)
		cancelClose()
		_ = httpSrv.Close()
	}
	<-prepDone
	d.reporting.Wait()
	// The engine's memory is the model's mapping: unmap it only when no
	// handler can still read it (a canceled generation stops within a token).
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), 5*time.Second)
	drained := d.srv.Drain(drainCtx)
	cancelDrain()
	d.mu.Lock()
	if d.engine != nil && drained {
		_ = d.engine.Close()
	}
	d.mu.Unlock()
	d.releaseModel()
	d.writeTermination(d.summary())
	log.Info("Stopped")
	return stageErr
}

// summary is the one-line account of how inferd ran, for the termination message.
func (d *Daemon) summary() string {
	d.mu.Lock()
	msg := d.message
	d.mu.Unlock()
	if msg != "" {
		return msg
	}
	st := d.srv.Status()
	return config.FormatTermination(st.Reason, st.Message)
}

// loadFailure is the reason a failed engine.Load is reported with: a valid
// file this build cannot run (or not the one declared) is UnsupportedModel,
// anything else (not GGUF, a header or layout that fails validation)
// InvalidModel.
func loadFailure(err error) string {
	if errors.Is(err, engine.ErrUnsupported) {
		return ReasonUnsupported
	}
	return ReasonInvalidModel
}

// prepare fetches, loads and tests the model, retrying what a retry can fix.
func (d *Daemon) prepare(ctx context.Context) {
	log := d.opts.Log
	go d.refreshPins(ctx)
	path, ok := d.fetchModel(ctx)
	if !ok {
		return
	}
	for d.cfg.Stage {
		now := time.Now().UTC()
		d.srv.Update(func(st *server.Status) {
			st.Phase, st.Reason, st.Message, st.ReadyAt = server.PhaseStaged, string(server.PhaseStaged), "the verified model is in the node cache", &now
		})
		d.mu.Lock()
		d.message = fmt.Sprintf("Staged: %s is in the node cache", d.cfg.Model.Digest)
		d.mu.Unlock()
		log.Info("Staged", "path", path)
		if !d.keepStaged(ctx) {
			return
		}
		if path, ok = d.fetchModel(ctx); !ok {
			return
		}
	}
	estimate, fits := d.memoryFit(path)
	if !fits {
		d.fail(ReasonInsufficientMemory, estimate.message)
		d.report(ctx, config.Report{Digest: d.cfg.Model.Digest, Reason: ReasonInsufficientMemory, Message: estimate.message, MemoryEstimateBytes: estimate.bytes})
		return
	}
	d.srv.SetPhase(server.PhaseLoading, string(server.PhaseLoading), "mapping and validating the model")
	start := time.Now()
	e, err := engine.Load(path, engine.Expect{
		Architecture: d.cfg.Model.Architecture, Quantization: d.cfg.Model.Quantization, SizeBytes: d.cfg.Model.SizeBytes,
	}, engine.Options{
		Threads: int(d.cfg.Runtime.Threads), ContextLength: int(d.cfg.Runtime.ContextLength), ChatTemplate: d.opts.ChatTemplate,
		CPUPolicy: engine.CPUPolicy(d.cfg.Runtime.CPUPolicy),
	})
	if err != nil {
		d.failAndReport(ctx, loadFailure(err), fmt.Sprintf("load %s: %v", d.cfg.Model.Digest, err))
		return
	}
	loadSeconds := time.Since(start).Seconds()
	d.mu.Lock()
	d.engine = e
	d.mu.Unlock()
	d.srv.Metrics().ModelLoadSeconds.Set(loadSeconds)
	info := e.Info()
	d.srv.Metrics().ModelInfo.WithLabelValues(d.cfg.Model.Name, d.cfg.Model.Digest, info.Architecture, info.Quantization).Set(1)
	d.srv.Update(func(st *server.Status) {
		st.Model.Info, st.Model.LoadSeconds, st.Model.Path = info, loadSeconds, path
	})
	log.Info("Model loaded", "seconds", loadSeconds, "architecture", info.Architecture, "quantization", info.Quantization, "engine", info.Engine, "chatTemplate", info.ChatTemplate)
	if info.ChatTemplateFallback != "" {
		log.Info("Chat prompts use a named template", "chatTemplate", info.ChatTemplate, "reason", info.ChatTemplateFallback)
	}

	d.srv.SetPhase(server.PhaseSelfTesting, string(server.PhaseSelfTesting), "running the self-test on this node")
	rep := selftest.Run(ctx, e, d.cfg.SelfTest)
	if ctx.Err() != nil {
		return
	}
	d.srv.Metrics().SelfTestTokensSec.Set(rep.TokensPerSecond)
	d.srv.Metrics().SelfTestTTFT.Set(rep.TimeToFirstTokenSeconds)
	d.srv.Update(func(st *server.Status) { st.SelfTest = &rep })
	prompts := 0
	if d.cfg.SelfTest != nil {
		prompts = len(d.cfg.SelfTest.Prompts)
	}
	report := selfTestReport(d.cfg.Model.Digest, rep, prompts, loadSeconds, peakRSSBytes())
	report.MemoryEstimateBytes = estimate.bytes
	if !rep.Passed {
		d.fail(ReasonSelfTestFailed, selfTestFailure(rep))
		d.report(ctx, report)
		return
	}
	d.srv.SetEngine(e)
	d.srv.SetReady()
	d.report(ctx, report)
	d.mu.Lock()
	d.message = fmt.Sprintf("Ready: served %s (%s); %s", d.cfg.Model.Digest, info.Quantization, rep.Message)
	d.mu.Unlock()
	log.Info("Ready", "tokensPerSecond", rep.TokensPerSecond, "timeToFirstTokenSeconds", rep.TimeToFirstTokenSeconds, "selfTest", rep.Message)
}

// report hands r to the Reporter in the background: readiness never waits
// for the API server, and a report that cannot be written is logged, never
// fatal. It runs once per process, and with ReportMarker once per pod.
func (d *Daemon) report(ctx context.Context, r config.Report) {
	if d.opts.Reporter == nil || !d.cfg.Report.Enabled || d.cfg.Stage {
		return
	}
	value, err := config.FormatReport(r)
	if err != nil {
		d.opts.Log.Info("Cannot format the self-test report; not reporting", "error", err.Error())
		return
	}
	if d.opts.ReportMarker != "" {
		if _, err := os.Stat(d.opts.ReportMarker); err == nil {
			d.opts.Log.Info("The self-test report of this pod was written before this container started; not writing it again", "marker", d.opts.ReportMarker)
			return
		}
	}
	d.reporting.Add(1)
	go func() {
		defer d.reporting.Done()
		if err := d.opts.Reporter.Write(ctx, value); err != nil {
			d.opts.Log.Info("Cannot write the self-test report to the pod; the operator sees readiness only", "error", redact.Text(err.Error()))
			return
		}
		if d.opts.ReportMarker != "" {
			if err := os.WriteFile(d.opts.ReportMarker, []byte(r.Digest+"\n"), 0o600); err != nil {
				d.opts.Log.Info("Cannot mark the self-test report as written; a restarted container writes it again", "error", err.Error())
			}
		}
	}()
}

// fetchModel gets the verified file into the cache. Transient failures are
// retried for as long as inferd runs (the node may be offline for hours);
// a permanent one (404, 401, a layer that is not there) or a digest that
// keeps not matching fails.
func (d *Daemon) fetchModel(ctx context.Context) (string, bool) {
	log := d.opts.Log
	f, src, err := d.fetcher()
	if err != nil {
		d.fail(ReasonFetchFailed, err.Error())
		return "", false
	}
	if d.srv.Status().Phase != server.PhaseFetching { // keepStaged's reason stays
		d.srv.SetPhase(server.PhaseFetching, string(server.PhaseFetching), "fetching "+source(d.cfg))
	}
	backoff := d.opts.RetryBackoff
	mismatches := 0
	// Room for the download, and the pin record written at start.
	d.pruneCache(f)
	for round := 1; ; round++ {
		start := time.Now()
		var peers []fetch.Source
		for _, p := range d.peerURLs() {
			// A peer gets the fetcher's short peer timeouts and none of its credentials.
			peers = append(peers, fetch.PeerSource(f, p, d.cfg.Model.Digest))
		}
		res, tried, err := f.FetchVia(ctx, peers, src, d.cfg.Model.Digest, d.cfg.Model.SizeBytes)
		if err == nil {
			err = d.holdModel(f)
		}
		seconds := time.Since(start).Seconds()
		var peerBytes int64
		for _, p := range tried {
			peerBytes += p.Downloaded
			if p.Err != nil {
				log.Info("Skipped a peer", "peer", p.Peer, "downloadedBytes", p.Downloaded, "error", p.Err.Error())
			} else {
				log.Info("Fetched the model from a peer", "peer", p.Peer, "downloadedBytes", p.Downloaded)
			}
		}
		d.countPeerRejects(tried)
		m := d.srv.Metrics()
		m.DownloadBytes.Add(float64(res.Downloaded))
		if res.CacheHit {
			m.CacheHits.Inc()
		} else {
			m.DownloadSeconds.Add(seconds)
		}
		d.srv.Update(func(st *server.Status) {
			st.Model.DownloadBytes += res.Downloaded
			st.Model.PeerDownloadBytes += peerBytes
			if !res.CacheHit {
				st.Model.DownloadSeconds += seconds
			}
			st.Model.CacheHit = res.CacheHit
		})
		if res.Replaced {
			log.Info("The cached model no longer matched its digest; it was removed and fetched again", "digest", d.cfg.Model.Digest)
		}
		if err == nil {
			if fi, statErr := os.Stat(res.Path); statErr == nil {
				d.srv.Update(func(st *server.Status) { st.Model.SizeBytes = fi.Size() })
			}
			log.Info("Model in cache", "cacheHit", res.CacheHit, "downloadedBytes", res.Downloaded, "seconds", seconds)
			d.pruneCache(f)
			return res.Path, true
		}
		if ctx.Err() != nil {
			return "", false
		}
		if originMismatch(err) {
			mismatches++
		} else {
			mismatches = 0
		}
		reason, final := fetchFailure(err, d.cfg.Stage, round, mismatches)
		if final {
			d.failAndReport(ctx, reason, err.Error())
			return "", false
		}
		log.Info("Fetching the model failed; retrying", "error", err.Error(), "after", backoff)
		d.srv.SetPhase(server.PhaseFetching, reason, fmt.Sprintf("%v; retrying in %s", err, backoff))
		select {
		case <-ctx.Done():
			return "", false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Minute)
	}
}

// originMismatch: the origin's bytes were not the file (a wrong digest, or
// more bytes than the model's size).
func originMismatch(err error) bool {
	return errors.Is(err, fetch.ErrDigestMismatch) || errors.Is(err, fetch.ErrTooLarge)
}

// fetchFailure classifies a failed fetch round for the operator: the reason,
// and whether inferd gives up (a stager then exits). An origin that
// rejects the request (404, 410, 401, 403) is final at once: every node
// would hear the same. The origin's bytes hashing wrong is final after
// maxMismatches rounds in a row; other failures are retried, by a stager
// for stageRounds rounds.
func fetchFailure(err error, stage bool, round, mismatches int) (reason string, final bool) {
	exhausted := stage && round >= stageRounds
	switch {
	case errors.Is(err, fetch.ErrRejected):
		return ReasonOriginRejected, true
	case originMismatch(err):
		return ReasonDigestMismatch, exhausted || mismatches >= maxMismatches
	case errors.Is(err, fetch.ErrNoSpace):
		return ReasonInsufficientDisk, stage
	case errors.Is(err, fetch.ErrPermanent):
		return ReasonFetchFailed, true
	case exhausted:
		return ReasonFetchFailed, true
	}
	return ReasonFetchRetrying, false
}

// maxPeersInStatus bounds the peers /status counts rejects for.
const maxPeersInStatus = 32

// countPeerRejects counts the peers that sent bytes that did not verify, in
// /status by peer (a bounded set) and in the metric (no peer label).
func (d *Daemon) countPeerRejects(tried []fetch.PeerAttempt) {
	for _, p := range tried {
		if p.Err == nil || !(errors.Is(p.Err, fetch.ErrDigestMismatch) || errors.Is(p.Err, fetch.ErrTooLarge)) {
			continue
		}
		d.srv.Metrics().PeerRejects.Inc()
		peer, _, _ := strings.Cut(p.Peer, fetch.BlobPath)
		d.srv.Update(func(st *server.Status) {
			if st.Model.PeerRejects == nil {
				st.Model.PeerRejects = map[string]int64{}
			}
			if _, ok := st.Model.PeerRejects[peer]; !ok && len(st.Model.PeerRejects) >= maxPeersInStatus {
				peer = "other"
			}
			st.Model.PeerRejects[peer]++
		})
	}
}

// stagedFileRotted re-verifies a stager's file with fetch's Check (a stat
// while it is unchanged; a hash when its size or time changed, or every
// ReverifyAfter) and says why it no longer serves, "" while it does (or the
// check could not run). A file that no longer hashes to its digest is
// removed, so that it is fetched again.
func (d *Daemon) stagedFileRotted(ctx context.Context) string {
	err := (&fetch.Fetcher{CacheDir: d.cfg.CacheDir}).Check(ctx, d.cfg.Model.Digest)
	switch {
	case err == nil, ctx.Err() != nil:
		return ""
	case errors.Is(err, fetch.ErrNotCached):
		return redact.Text(err.Error())
	}
	d.opts.Log.Info("Cannot check the staged model", "error", err.Error())
	return ""
}

// peerURLs are the peers to try before the origin: the configured ones,
// then those of the operator's peer directory for this node's site (read
// afresh each round, since the operator updates it as nodes stage).
func (d *Daemon) peerURLs() []string {
	urls := append([]string(nil), d.cfg.Peers.From...)
	if d.cfg.Peers.File == "" {
		return urls
	}
	dir, err := config.ReadPeerDirectory(d.cfg.Peers.File)
	if err != nil {
		d.opts.Log.Info("Ignoring the peer directory", "error", err.Error())
		return urls
	}
	return append(urls, dir.PeersOf(d.opts.NodeName, d.cfg.Model.Digest)...)
}

// fetcher builds the Fetcher and Source the config describes.
func (d *Daemon) fetcher() (*fetch.Fetcher, fetch.Source, error) {
	client := &http.Client{}
	if d.cfg.Model.CABundle != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(d.cfg.Model.CABundle)) {
			return nil, nil, errors.New("model.caBundle holds no PEM certificate")
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		client.Transport = tr
	}
	if d.cfg.Model.URL != "" && strings.HasPrefix(d.cfg.Model.URL, "http://") && !d.cfg.Model.AllowInsecureHTTP {
		return nil, nil, errors.New("model.url is plain http:// and allowInsecureHTTP is false")
	}
	rate := d.opts.DownloadBytesPerSecond
	if d.cfg.Download.BytesPerSecond > 0 {
		rate = d.cfg.Download.BytesPerSecond
	}
	f := &fetch.Fetcher{
		CacheDir: d.cfg.CacheDir, Client: client, Authorization: d.opts.Authorization,
		BytesPerSecond: rate, AttemptTimeout: d.opts.DownloadAttemptTimeout, DiskHeadroom: d.cfg.Download.DiskHeadroomBytes,
		// The attempts of a round wait no longer than the rounds do.
		Backoff: min(d.opts.RetryBackoff, time.Second),
	}
	if d.cfg.Model.OCI != "" {
		return f, &fetch.OCISource{
			Reference: d.cfg.Model.OCI, Digest: d.cfg.Model.Digest, PlainHTTP: d.cfg.Model.AllowInsecureHTTP,
			Client: client, DockerConfigJSON: d.opts.RegistryAuth,
		}, nil
	}
	return f, fetch.HTTPSource(f, d.cfg.Model.URL), nil
}

// fail records a failure that keeps inferd unready: in /status, the log and
// the termination message (written now too, in case inferd is killed).
func (d *Daemon) fail(reason, message string) {
	message = redact.Text(message)
	// The termination message first: whoever sees Failed in /status may
	// read it (and a kill right after leaves it in place).
	msg := config.FormatTermination(reason, message)
	d.mu.Lock()
	d.message = msg
	d.mu.Unlock()
	d.writeTermination(msg)
	d.srv.SetPhase(server.PhaseFailed, reason, message)
	d.opts.Log.Info("Not ready", "reason", reason, "message", message)
}

// failAndReport fails, and reports the failure into the pod as the
// self-test would have: a serving inferd that gives up before its
// self-test (the file fails verification, the origin rejects it, the
// engine cannot load it) stays up, not ready, and without the report the
// operator would wait for the progress deadline to learn nothing. One
// report per pod, as for the self-test's (which then never runs).
func (d *Daemon) failAndReport(ctx context.Context, reason, message string) {
	d.fail(reason, message)
	d.report(ctx, config.Report{Digest: d.cfg.Model.Digest, Reason: reason, Message: redact.Text(message)})
}

// writeTermination writes the kubelet's termination message (at most 4 KiB
// is kept by Kubernetes).
func (d *Daemon) writeTermination(msg string) {
	if d.opts.TerminationLog == "" {
		return
	}
	if err := os.WriteFile(d.opts.TerminationLog, []byte(redact.Text(msg)+"\n"), 0o644); err != nil {
		d.opts.Log.V(1).Info("Cannot write the termination message", "path", d.opts.TerminationLog, "error", err.Error())
	}
}
