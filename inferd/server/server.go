// Package server is inferd's HTTP side: the OpenAI-compatible API, the
// probes the kubelet and the operator rely on, /status and /metrics.
//
// Readiness is the contract with the operator: /readyz answers 200 only
// while a verified model is loaded and its self-test passed, and not while
// shutting down. /healthz only says the process is alive, so a long download
// never gets the pod restarted.
//
// What it owns: the HTTP API, its errors (one mapping from error classes to
// status codes) and its metrics. What it may not touch: the model files
// (inferd/fetch owns the cache) and the prompts in logs.
package server

import (
	"context"
	"crypto/subtle"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/fetch/redact"
	"github.com/slmops/slmops/inferd/selftest"
)

// Phase is where inferd is in its life.
type Phase string

// The phases, in order.
const (
	PhaseStarting    Phase = "Starting"
	PhaseFetching    Phase = "Fetching"
	PhaseLoading     Phase = "Loading"
	PhaseSelfTesting Phase = "SelfTesting"
	PhaseReady       Phase = "Ready"
	// PhaseStaged: a stager holds the verified model in the node cache and
	// serves it to peers; it is ready, and serves no completions.
	PhaseStaged       Phase = "Staged"
	PhaseFailed       Phase = "Failed"
	PhaseShuttingDown Phase = "ShuttingDown"
)

// Options configure a Server.
type Options struct {
	// ModelName is the model id the API serves (the SLMModel's name).
	ModelName string
	// Concurrency is how many generations run at once.
	Concurrency int
	// QueueDepth is how many requests may wait for a slot; more get 429.
	QueueDepth int
	// QueueTimeout is how long a request waits for a slot before a 429.
	QueueTimeout time.Duration
	// MaxRequestBytes bounds a request body (413 past it).
	MaxRequestBytes int64
	// MaxTokens bounds max_tokens; 0 means the model's context length.
	MaxTokens int
	// DefaultMaxTokens is used when a request sets no max_tokens.
	DefaultMaxTokens int
	// Registerer receives the metrics; a new registry when nil.
	Registerer prometheus.Registerer
	// Gatherer serves /metrics; the registry above when nil.
	Gatherer prometheus.Gatherer
	// Log never receives prompts or answers.
	Log logr.Logger
	// Blobs, when set, serves the node's verified model files to the
	// other nodes of its site under /v1/blobs/ (fetch.Fetcher.ServeBlob).
	Blobs http.HandlerFunc
	// APIToken, when set, is the bearer token every request to the
	// OpenAI-compatible API (/v1/models, /v1/completions,
	// /v1/chat/completions) must carry. Probes, /status, /metrics and the
	// peers' /v1/blobs/ stay open: the kubelet and Prometheus call them, and
	// a blob is only ever trusted after its digest is checked.
	APIToken string
}

// ModelStatus is what /status says about the model.
type ModelStatus struct {
	Name          string `json:"name"`
	Digest        string `json:"digest"`
	Source        string `json:"source,omitempty"`
	Path          string `json:"path,omitempty"`
	SizeBytes     int64  `json:"sizeBytes,omitempty"`
	CacheHit      bool   `json:"cacheHit"`
	DownloadBytes int64  `json:"downloadBytes"`
	// PeerDownloadBytes came from peers of the site (those of skipped peers too).
	PeerDownloadBytes int64 `json:"peerDownloadBytes,omitempty"`
	// PeerRejects counts, by peer (base URL), the files a peer sent that
	// did not verify (a wrong digest, more bytes than the model) and were
	// thrown away; at most 32 peers, the rest as "other".
	PeerRejects     map[string]int64 `json:"peerRejects,omitempty"`
	DownloadSeconds float64          `json:"downloadSeconds"`
	LoadSeconds     float64          `json:"loadSeconds"`
	engine.Info     `json:",inline"`
}

// Status is the /status document.
type Status struct {
	Phase Phase `json:"phase"`
	Ready bool  `json:"ready"`
	// Reason is a CamelCase word for why inferd is not ready (empty when it is).
	Reason string `json:"reason,omitempty"`
	// Message says it in words.
	Message  string           `json:"message,omitempty"`
	Node     string           `json:"node,omitempty"`
	Model    ModelStatus      `json:"model"`
	SelfTest *selftest.Report `json:"selfTest,omitempty"`
	// Requests is the serving side's load.
	Requests  RequestStatus `json:"requests"`
	StartedAt time.Time     `json:"startedAt"`
	ReadyAt   *time.Time    `json:"readyAt,omitempty"`
}

// RequestStatus is the load now.
type RequestStatus struct {
	Running     int `json:"running"`
	Queued      int `json:"queued"`
	Concurrency int `json:"concurrency"`
	QueueDepth  int `json:"queueDepth"`
}

// Server serves one model.
type Server struct {
	opts    Options
	lim     *limiter
	metrics *Metrics
	gather  prometheus.Gatherer

	mu     sync.RWMutex
	status Status
	engine engine.Engine
}

// New returns a Server in the Starting phase.
func New(opts Options) *Server {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.QueueTimeout <= 0 {
		opts.QueueTimeout = 30 * time.Second
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 1 << 20
	}
	if opts.DefaultMaxTokens <= 0 {
		opts.DefaultMaxTokens = 256
	}
	if opts.Registerer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer, opts.Gatherer = reg, reg
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.DefaultGatherer
	}
	s := &Server{opts: opts, lim: newLimiter(opts.Concurrency, opts.QueueDepth, opts.QueueTimeout), gather: opts.Gatherer}
	s.metrics = newMetrics(opts.Registerer, s.lim)
	s.status = Status{Phase: PhaseStarting, Reason: string(PhaseStarting), Message: "starting", StartedAt: time.Now().UTC(), Model: ModelStatus{Name: opts.ModelName}}
	return s
}

// Metrics are the server's metrics, for the code that fetches and loads.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Update changes the status under the lock; phase changes go through here.
func (s *Server) Update(f func(st *Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.status)
	s.status.Ready = (s.status.Phase == PhaseReady && s.engine != nil) || s.status.Phase == PhaseStaged
	if s.status.Ready && s.status.Phase == PhaseReady {
		s.status.Reason, s.status.Message = "", "serving"
		s.metrics.Ready.Set(1)
	} else {
		s.metrics.Ready.Set(0)
	}
}

// SetPhase moves to a phase that is not ready, saying why.
func (s *Server) SetPhase(p Phase, reason, message string) {
	s.Update(func(st *Status) { st.Phase, st.Reason, st.Message = p, reason, message })
}

// SetEngine installs the loaded model; it serves once the phase is Ready.
func (s *Server) SetEngine(e engine.Engine) {
	s.mu.Lock()
	s.engine = e
	s.mu.Unlock()
}

// SetReady marks the model ready to serve.
func (s *Server) SetReady() {
	now := time.Now().UTC()
	s.Update(func(st *Status) { st.Phase, st.ReadyAt = PhaseReady, &now })
}

// Status returns a copy of the status. Its message never holds a URL's
// query or userinfo: /status needs no authentication.
func (s *Server) Status() Status {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.status
	st.Message, st.Model.Source = redact.Text(st.Message), redact.Text(st.Model.Source)
	st.Model.PeerRejects = maps.Clone(st.Model.PeerRejects)
	st.Requests = RequestStatus{Running: s.lim.running(), Queued: s.lim.queued(), Concurrency: cap(s.lim.slots), QueueDepth: int(s.lim.maxQueue)}
	return st
}

// Drain waits until no generation runs, or ctx is done; it reports whether
// none runs, that is whether the engine may be closed.
func (s *Server) Drain(ctx context.Context) bool {
	for s.lim.running() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// readyEngine is the engine when inferd is ready to serve.
func (s *Server) readyEngine() (engine.Engine, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.status.Ready || s.engine == nil {
		// A stager (PhaseStaged) is ready without an engine: it serves
		// blobs to peers, never completions.
		return nil, fmt.Errorf("%w: inferd is %s (%s); see /status", errNotReady, s.status.Phase, s.status.Message)
	}
	return s.engine, nil
}

// Handler is inferd's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := s.Status()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !st.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %s: %s\n", st.Reason, st.Message)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{}))
	if s.opts.Blobs != nil {
		mux.HandleFunc("GET /v1/blobs/", s.opts.Blobs)
	}
	mux.HandleFunc("GET /v1/models", s.instrument("models", s.models))
	mux.HandleFunc("GET /v1/models/{id}", s.instrument("models", s.model))
	mux.HandleFunc("POST /v1/completions", s.instrument("completions", s.completions))
	mux.HandleFunc("POST /v1/chat/completions", s.instrument("chat_completions", s.chatCompletions))
	// Everything else under /v1 is an OpenAI-style 404 (or 405), not a
	// plain-text one that clients cannot parse.
	mux.HandleFunc("/v1/", s.instrument("other", func(w http.ResponseWriter, r *http.Request) error {
		for _, p := range []string{"/v1/models", "/v1/completions", "/v1/chat/completions"} {
			if r.URL.Path == p {
				return &apiError{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error", Message: fmt.Sprintf("%s does not accept %s", p, r.Method)}
			}
		}
		return fmt.Errorf("%w: no endpoint %s %s (inferd serves /v1/models, /v1/completions, /v1/chat/completions)", errNotFound, r.Method, r.URL.Path)
	}))
	return mux
}

// instrument counts and times a handler and answers its error.
func (s *Server) instrument(endpoint string, h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		err := s.authorize(r)
		if err == nil {
			err = h(rec, r)
		}
		if err != nil {
			if !rec.wrote {
				writeError(rec, err)
			}
			if rec.code >= 500 && r.Context().Err() == nil {
				s.opts.Log.Error(err, "Request failed", "endpoint", endpoint, "code", rec.code)
			}
		}
		s.metrics.Requests.WithLabelValues(endpoint, fmt.Sprint(rec.code)).Inc()
		s.metrics.RequestSeconds.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	}
}

// authorize checks the bearer token of an API request, when one is set.
func (s *Server) authorize(r *http.Request) error {
	if s.opts.APIToken == "" {
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.APIToken)) == 1 {
		return nil
	}
	return errUnauthorized
}

type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) Flush() {
	r.wrote = true
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
