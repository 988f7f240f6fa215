package server

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are inferd's Prometheus metrics. Labels are bounded: endpoint is
// one of models, completions, chat_completions; code is an HTTP status.
type Metrics struct {
	Requests          *prometheus.CounterVec
	RequestSeconds    *prometheus.HistogramVec
	TimeToFirstToken  prometheus.Histogram
	TimePerToken      prometheus.Histogram
	PromptTokens      prometheus.Counter
	GeneratedTokens   prometheus.Counter
	QueueDepth        prometheus.GaugeFunc
	Running           prometheus.GaugeFunc
	ModelLoadSeconds  prometheus.Gauge
	DownloadBytes     prometheus.Counter
	DownloadSeconds   prometheus.Counter
	CacheHits         prometheus.Counter
	PeerRejects       prometheus.Counter
	Ready             prometheus.Gauge
	SelfTestTokensSec prometheus.Gauge
	SelfTestTTFT      prometheus.Gauge
	ModelInfo         *prometheus.GaugeVec
}

// endpoints are the values of the endpoint label.
var endpoints = []string{"models", "completions", "chat_completions"}

func newMetrics(reg prometheus.Registerer, lim *limiter) *Metrics {
	latency := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slmops_inferd_requests_total",
			Help: "API requests answered, by endpoint (models, completions, chat_completions) and HTTP status code.",
		}, []string{"endpoint", "code"}),
		RequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slmops_inferd_request_duration_seconds", Buckets: latency,
			Help: "Time from a request's arrival to its last byte, by endpoint (models, completions, chat_completions).",
		}, []string{"endpoint"}),
		TimeToFirstToken: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "slmops_inferd_time_to_first_token_seconds", Buckets: latency,
			Help: "Time from the start of a generation (after queueing) to its first token, prompt processing included.",
		}),
		TimePerToken: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "slmops_inferd_time_per_output_token_seconds",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
			Help:    "Mean time per generated token after the first, one observation per request.",
		}),
		PromptTokens:     prometheus.NewCounter(prometheus.CounterOpts{Name: "slmops_inferd_prompt_tokens_total", Help: "Prompt tokens read."}),
		GeneratedTokens:  prometheus.NewCounter(prometheus.CounterOpts{Name: "slmops_inferd_generated_tokens_total", Help: "Tokens generated."}),
		ModelLoadSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "slmops_inferd_model_load_seconds", Help: "Time the model took to map, validate and load."}),
		DownloadBytes:    prometheus.NewCounter(prometheus.CounterOpts{Name: "slmops_inferd_download_bytes_total", Help: "Model bytes downloaded from the source."}),
		DownloadSeconds:  prometheus.NewCounter(prometheus.CounterOpts{Name: "slmops_inferd_download_seconds_total", Help: "Time spent downloading the model (retries and lock waits included)."}),
		CacheHits:        prometheus.NewCounter(prometheus.CounterOpts{Name: "slmops_inferd_cache_hits_total", Help: "Models found verified in the node cache, with nothing downloaded."}),
		PeerRejects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "slmops_inferd_peer_rejects_total",
			Help: "Model files a peer of the site sent that failed verification (a wrong digest, or more bytes than the model) and were thrown away.",
		}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{Name: "slmops_inferd_ready", Help: "1 when the model is verified, loaded and passed its self-test."}),
		SelfTestTokensSec: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "slmops_inferd_self_test_tokens_per_second", Help: "Decode tokens per second the self-test measured on this node.",
		}),
		SelfTestTTFT: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "slmops_inferd_self_test_time_to_first_token_seconds", Help: "Slowest time to first token among the self-test's prompts on this node.",
		}),
		ModelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "slmops_inferd_model_info", Help: "1 for the model this inferd serves (one per process).",
		}, []string{"model", "digest", "architecture", "quantization"}),
	}
	// Each endpoint's series exist from the start, at 0: rate() over a
	// series that first appears at 1 sees no rise, so a pod's first requests
	// would not show on a dashboard.
	for _, e := range endpoints {
		m.RequestSeconds.WithLabelValues(e)
		m.Requests.WithLabelValues(e, "200")
	}
	m.QueueDepth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "slmops_inferd_queue_depth", Help: "Requests waiting for a generation slot.",
	}, func() float64 { return float64(lim.queued()) })
	m.Running = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "slmops_inferd_requests_running", Help: "Generations running now.",
	}, func() float64 { return float64(lim.running()) })
	reg.MustRegister(m.Requests, m.RequestSeconds, m.TimeToFirstToken, m.TimePerToken, m.PromptTokens, m.GeneratedTokens,
		m.QueueDepth, m.Running, m.ModelLoadSeconds, m.DownloadBytes, m.DownloadSeconds, m.CacheHits, m.PeerRejects, m.Ready,
		m.SelfTestTokensSec, m.SelfTestTTFT, m.ModelInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// MetricNames lists the names of inferd's own metrics on /metrics (not the Go
// runtime's or the process's), so that dashboards and alert rules can be
// checked against what inferd really serves.
func MetricNames() []string {
	var c captured
	newMetrics(&c, &limiter{})
	var names []string
	for _, col := range c {
		names = append(names, describedNames(col)...)
	}
	return names
}

// captured is a Registerer that only keeps what is registered.
type captured []prometheus.Collector

func (c *captured) Register(col prometheus.Collector) error { *c = append(*c, col); return nil }
func (c *captured) MustRegister(cols ...prometheus.Collector) {
	for _, col := range cols {
		_ = c.Register(col)
	}
}
func (c *captured) Unregister(prometheus.Collector) bool { return false }

var fqName = regexp.MustCompile(`fqName: "(slmops_[a-z0-9_]+)"`)

// describedNames are the slmops metric names a collector describes.
func describedNames(col prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc)
	go func() { col.Describe(ch); close(ch) }()
	var names []string
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}
