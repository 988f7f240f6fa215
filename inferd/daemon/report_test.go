package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/selftest"
	"github.com/slmops/slmops/inferd/server"
)

func TestParseVmHWM(t *testing.T) {
	for name, tc := range map[string]struct {
		status string
		want   int64
	}{
		"Linux's status":    {"Name:\tinferd\nVmPeak:\t  900000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1000 kB\n", 12345 << 10},
		"no VmHWM line":     {"Name:\tinferd\n", 0},
		"a unit it ignores": {"VmHWM:\t12 MB\n", 0},
		"not a number":      {"VmHWM:\tx kB\n", 0},
	} {
		if got := parseVmHWM([]byte(tc.status)); got != tc.want {
			t.Errorf("%s: got %d; want %d", name, got, tc.want)
		}
	}
	if runtime.GOOS == "linux" && peakRSSBytes() <= 0 {
		t.Errorf("peakRSSBytes on Linux = %d; want this process's peak", peakRSSBytes())
	}
}

func TestSelfTestReport(t *testing.T) {
	yes, no := true, false
	digest := "sha256:" + hex.EncodeToString(make([]byte, 32))
	passed := selftest.Report{Passed: true, Reason: selftest.ReasonPassed, Message: "2/2 prompts passed", Gated: true,
		TokensPerSecond: 40, PromptTokensPerSecond: 300, TimeToFirstTokenSeconds: 0.2,
		Prompts: []selftest.PromptResult{{Index: 0, Passed: true, AnswerMatched: &yes}, {Index: 1, Passed: true}}}
	timedOut := selftest.Report{Reason: selftest.ReasonTimeout, Message: "prompt 1 did not finish", Gated: true,
		Prompts: []selftest.PromptResult{{Index: 0, Passed: true}, {Index: 1, AnswerMatched: &no}}}
	for name, tc := range map[string]struct {
		rep     selftest.Report
		prompts int
		want    config.Report
	}{
		"a pass": {passed, 2, config.Report{Digest: digest, Passed: true, Reason: config.ReasonPassed, Message: "2/2 prompts passed",
			Prompts: []bool{true, true}, DecodeTokensPerSecond: 40, PromptTokensPerSecond: 300, TimeToFirstTokenSeconds: 0.2,
			PeakRSSBytes: 1 << 30, LoadSeconds: 1.5}},
		"a timeout: the prompts not reached failed": {timedOut, 3, config.Report{Digest: digest, Reason: config.ReasonSelfTestFailed,
			Message: "self-test Timeout: prompt 1 did not finish", Prompts: []bool{true, false, false}, PeakRSSBytes: 1 << 30, LoadSeconds: 1.5}},
		"no self-test: no prompts": {selftest.Report{Passed: true, Reason: selftest.ReasonPassed, Message: "measurement only", TokensPerSecond: 9,
			Prompts: []selftest.PromptResult{{Index: 0, Passed: true}}}, 0,
			config.Report{Digest: digest, Passed: true, Reason: config.ReasonPassed, Message: "measurement only", DecodeTokensPerSecond: 9,
				PeakRSSBytes: 1 << 30, LoadSeconds: 1.5}},
	} {
		t.Run(name, func(t *testing.T) {
			got := selfTestReport(digest, tc.rep, tc.prompts, 1.5, 1<<30)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if _, err := config.FormatReport(got); err != nil {
				t.Errorf("the report does not format: %v", err)
			}
		})
	}
}

// blockingReporter records the reports and answers each only when told to.
type blockingReporter struct {
	mu      sync.Mutex
	values  []string
	written chan struct{}
	release chan struct{}
}

func (r *blockingReporter) Write(ctx context.Context, value string) error {
	r.mu.Lock()
	r.values = append(r.values, value)
	r.mu.Unlock()
	r.written <- struct{}{}
	select {
	case <-r.release:
	case <-ctx.Done():
	}
	return nil
}

// TestTheReportIsWrittenOnceAndNeverHoldsUpReadiness runs a daemon on a
// generated model, passing and failing its self-test: the Reporter gets one
// report that ParseReport reads, with the load time and peak memory, and
// the pod is Ready while the write is still waiting.
func TestTheReportIsWrittenOnceAndNeverHoldsUpReadiness(t *testing.T) {
	origin, digest := modelOrigin(t)

	for name, tc := range map[string]struct {
		expect     string
		wantPassed bool
		wantReady  bool
	}{
		"a self-test that passes": {"small language", true, true},
		"a self-test that fails":  {"gigantic", false, false},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := &config.Config{
				Model:    config.Model{Name: "tiny", URL: origin.URL + "/m.gguf", AllowInsecureHTTP: true, Digest: digest},
				Runtime:  config.Runtime{ContextLength: 512, MaxConcurrentRequests: 1},
				SelfTest: &config.SelfTest{Prompts: []config.Prompt{{Prompt: "slmops", MaxTokens: 6, ExpectContains: tc.expect}, {Prompt: "Hello", MaxTokens: 4}}},
				Port:     8080, CacheDir: filepath.Join(t.TempDir(), "cache"), Report: config.Reporting{Enabled: true},
			}
			rep := &blockingReporter{written: make(chan struct{}, 4), release: make(chan struct{})}
			d := New(cfg, Options{Listen: "127.0.0.1:0", Log: logr.Discard(), Reporter: rep})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			select {
			case <-rep.written:
			case err := <-done:
				t.Fatalf("Run ended before a report: %v", err)
			case <-time.After(time.Minute):
				t.Fatal("no report within a minute")
			}
			// The write has not returned, and readiness is already decided.
			rec := httptest.NewRecorder()
			d.Server().Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if ready := rec.Code == http.StatusOK; ready != tc.wantReady {
				t.Errorf("/readyz %d while the report is being written; want ready %v", rec.Code, tc.wantReady)
			}
			close(rep.release)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			rep.mu.Lock()
			defer rep.mu.Unlock()
			if len(rep.values) != 1 {
				t.Fatalf("%d reports; want 1", len(rep.values))
			}
			got, err := config.ParseReport(rep.values[0])
			if err != nil {
				t.Fatal(err)
			}
			wantReason := config.ReasonPassed
			if !tc.wantPassed {
				wantReason = config.ReasonSelfTestFailed
			}
			if got.Passed != tc.wantPassed || got.Reason != wantReason || got.Digest != digest ||
				!cmp.Equal(got.Prompts, []bool{tc.wantPassed, true}) || got.LoadSeconds <= 0 || got.DecodeTokensPerSecond <= 0 ||
				got.PromptTokensPerSecond <= 0 || (runtime.GOOS == "linux" && got.PeakRSSBytes <= 0) {
				t.Errorf("report %+v; want passed %v (%s), prompts [%v true], and every figure measured", got, tc.wantPassed, wantReason, tc.wantPassed)
			}
		})
	}
}

// TestAFileThatFailsVerificationIsReported: a serving inferd whose origin
// keeps sending bytes that do not hash to the digest gives up, stays up not
// ready, and reports DigestMismatch into its pod, so that the operator
// fails the node at once instead of after the progress deadline.
func TestAFileThatFailsVerificationIsReported(t *testing.T) {
	origin, _ := modelOrigin(t)
	wrong := "sha256:" + strings.Repeat("ab", 32)
	cfg := &config.Config{
		Model:   config.Model{Name: "tiny", URL: origin.URL + "/m.gguf?sig=secret", AllowInsecureHTTP: true, Digest: wrong},
		Runtime: config.Runtime{ContextLength: 512, MaxConcurrentRequests: 1},
		Port:    8080, CacheDir: filepath.Join(t.TempDir(), "cache"), Report: config.Reporting{Enabled: true},
	}
	got, ready := runUntilReport(t, cfg, Options{})
	if ready {
		t.Error("ready with a file that fails verification")
	}
	if got.Passed || got.Reason != config.ReasonDigestMismatch || got.Digest != wrong || strings.Contains(got.Message, "secret") {
		t.Errorf("report %+v; want not passed, DigestMismatch of %s, and no signature in the message", got, wrong)
	}
}

// TestNoReportWhenTheConfigSaysNone: a Reporter alone does not make inferd
// write; the operator's config must ask for it (report.enabled).
func TestNoReportWhenTheConfigSaysNone(t *testing.T) {
	origin, digest := modelOrigin(t)
	cfg := &config.Config{
		Model:   config.Model{Name: "tiny", URL: origin.URL + "/m.gguf", AllowInsecureHTTP: true, Digest: digest},
		Runtime: config.Runtime{ContextLength: 512, MaxConcurrentRequests: 1},
		Port:    8080, CacheDir: filepath.Join(t.TempDir(), "cache"),
	}
	rep := &blockingReporter{written: make(chan struct{}, 4), release: make(chan struct{})}
	close(rep.release)
	d := New(cfg, Options{Listen: "127.0.0.1:0", Log: logr.Discard(), Reporter: rep})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for d.Server().Status().Phase != server.PhaseReady {
		if st := d.Server().Status(); st.Phase == server.PhaseFailed {
			t.Fatalf("inferd failed: %s %s", st.Reason, st.Message)
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended before Ready: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(rep.values) != 0 {
		t.Errorf("%d reports without report.enabled", len(rep.values))
	}
}

// TestARestartedContainerDoesNotReportAgain: the marker on the pod's
// emptyDir is written with the report, and a container that starts with it
// in place does not write again (one write per pod, however often it
// restarts); the marker holds the digest.
func TestARestartedContainerDoesNotReportAgain(t *testing.T) {
	origin, digest := modelOrigin(t)
	cfg := &config.Config{
		Model:   config.Model{Name: "tiny", URL: origin.URL + "/m.gguf", AllowInsecureHTTP: true, Digest: digest},
		Runtime: config.Runtime{ContextLength: 512, MaxConcurrentRequests: 1},
		Port:    8080, CacheDir: filepath.Join(t.TempDir(), "cache"), Report: config.Reporting{Enabled: true},
	}
	marker := filepath.Join(t.TempDir(), "reported")
	start := func() int {
		rep := &blockingReporter{written: make(chan struct{}, 4), release: make(chan struct{})}
		close(rep.release)
		d := New(cfg, Options{Listen: "127.0.0.1:0", Log: logr.Discard(), Reporter: rep, ReportMarker: marker})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		for d.Server().Status().Phase != server.PhaseReady {
			select {
			case err := <-done:
				t.Fatalf("Run ended before Ready: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		cancel() // Run waits for the report's write to end
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		rep.mu.Lock()
		defer rep.mu.Unlock()
		return len(rep.values)
	}
	if n := start(); n != 1 {
		t.Fatalf("the first container wrote %d reports; want 1", n)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != digest+"\n" {
		t.Fatalf("marker %q, %v; want the digest", b, err)
	}
	if n := start(); n != 0 {
		t.Errorf("the restarted container wrote %d reports; want none", n)
	}
}

// modelOrigin serves a generated model at /m.gguf until the test ends, and
// returns the server and the model's digest.
// runUntilReport runs a daemon of cfg with opts (on a free port, with a
// Reporter that returns at once) until it writes its report, and returns
// that one report, as ParseReport reads it, and whether /readyz said ready
// then.
func runUntilReport(t *testing.T, cfg *config.Config, opts Options) (config.Report, bool) {
	t.Helper()
	rep := &blockingReporter{written: make(chan struct{}, 4), release: make(chan struct{})}
	close(rep.release)
	opts.Listen, opts.Log, opts.Reporter = "127.0.0.1:0", logr.Discard(), rep
	d := New(cfg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-rep.written:
	case err := <-done:
		t.Fatalf("Run ended before a report: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("no report within two minutes")
	}
	rec := httptest.NewRecorder()
	d.Server().Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.values) != 1 {
		t.Fatalf("%d reports; want 1", len(rep.values))
	}
	got, err := config.ParseReport(rep.values[0])
	if err != nil {
		t.Fatal(err)
	}
	return got, rec.Code == http.StatusOK
}

func modelOrigin(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	var model bytes.Buffer
	if err := bigram.Write(&model, bigram.BuildOptions{Type: gguf.F16}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(model.Bytes())
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "m.gguf", time.Time{}, bytes.NewReader(model.Bytes()))
	}))
	t.Cleanup(origin.Close)
	return origin, "sha256:" + hex.EncodeToString(sum[:])
}
