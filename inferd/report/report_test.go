package report

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/inferd/config"
)

// request is what the fake API server saw of one request.
type request struct {
	Method, Path, ContentType, Authorization, Body string
}

// fakeAPI is a TLS server that answers with the statuses in order (the last
// one from then on) and records the requests.
type fakeAPI struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	statuses []int
	// onRequest runs before the answer (to rotate the token).
	onRequest func(n int)
}

func newFakeAPI(t *testing.T, statuses ...int) *fakeAPI {
	f := &fakeAPI{statuses: statuses}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(body)})
		n := len(f.requests)
		status := f.statuses[min(n, len(f.statuses))-1]
		hook := f.onRequest
		f.mu.Unlock()
		if hook != nil {
			hook(n)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status/100 != 2 {
			_, _ = io.WriteString(w, `{"kind":"Status","status":"Failure","message":"ValidatingAdmissionPolicy 'slmops-inferd-report' denied request: nope","code":`+strconv.Itoa(status)+`}`)
			return
		}
		_, _ = io.WriteString(w, `{"kind":"Pod"}`)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) seen() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

// target is a pod behind f, with its token and CA in files.
func (f *fakeAPI) target(t *testing.T, token string) Target {
	dir := t.TempDir()
	tgt := Target{Server: strings.TrimPrefix(f.URL, "https://"), Namespace: "edge", Pod: "shops-abc12-x7k2p",
		TokenFile: filepath.Join(dir, "token"), CAFile: filepath.Join(dir, "ca.crt")}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	if err := os.WriteFile(tgt.CAFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tgt.TokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return tgt
}

func writer(t *testing.T, tgt Target) *Writer {
	w, err := New(tgt, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	w.Backoff = time.Millisecond
	return w
}

func TestWriteSendsOneMergePatchOfTheAnnotation(t *testing.T) {
	f := newFakeAPI(t, http.StatusOK)
	w := writer(t, f.target(t, "token-1"))
	value := `{"digest":"","passed":true,"reason":"Passed"}`
	if err := w.Write(context.Background(), value); err != nil {
		t.Fatal(err)
	}
	want := []request{{
		Method: http.MethodPatch, Path: "/api/v1/namespaces/edge/pods/shops-abc12-x7k2p", ContentType: "application/merge-patch+json",
		Authorization: "Bearer token-1",
		Body:          `{"metadata":{"annotations":{"` + config.ReportAnnotation + `":"{\"digest\":\"\",\"passed\":true,\"reason\":\"Passed\"}"}}}`,
	}}
	if diff := cmp.Diff(want, f.seen()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestWriteRetriesWithTheCurrentToken: a failure the API server may get
// over is retried, and each attempt reads the token file again, because the
// kubelet rotates projected tokens.
func TestWriteRetriesWithTheCurrentToken(t *testing.T) {
	f := newFakeAPI(t, http.StatusServiceUnavailable, http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusOK)
	tgt := f.target(t, "token-1")
	f.onRequest = func(n int) {
		if err := os.WriteFile(tgt.TokenFile, []byte("token-"+string(rune('1'+n))), 0o600); err != nil {
			t.Error(err)
		}
	}
	if err := writer(t, tgt).Write(context.Background(), "{}"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range f.seen() {
		got = append(got, r.Authorization)
	}
	if diff := cmp.Diff([]string{"Bearer token-1", "Bearer token-2", "Bearer token-3", "Bearer token-4"}, got); diff != "" {
		t.Errorf("tokens sent (-want +got):\n%s", diff)
	}
}

func TestWriteGivesUp(t *testing.T) {
	for name, tc := range map[string]struct {
		statuses     []int
		attempts     int
		wantRequests int
		rejected     bool
		says         string
	}{
		"a denial is not retried":                                          {[]int{http.StatusForbidden}, 6, 1, true, "403 Forbidden: ValidatingAdmissionPolicy 'slmops-inferd-report' denied request: nope"},
		"a missing pod is not retried":                                     {[]int{http.StatusNotFound}, 6, 1, true, "404 Not Found"},
		"an API server that stays down is tried a bounded number of times": {[]int{http.StatusServiceUnavailable}, 3, 3, false, "503 Service Unavailable"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeAPI(t, tc.statuses...)
			w := writer(t, f.target(t, "secret-token"))
			w.Attempts = tc.attempts
			err := w.Write(context.Background(), "{}")
			if err == nil || !strings.Contains(err.Error(), tc.says) || errors.Is(err, ErrRejected) != tc.rejected {
				t.Fatalf("Write = %v; want an error saying %q (rejected %v)", err, tc.says, tc.rejected)
			}
			if strings.Contains(err.Error(), "secret-token") {
				t.Errorf("the error holds the token: %v", err)
			}
			if n := len(f.seen()); n != tc.wantRequests {
				t.Errorf("%d requests; want %d", n, tc.wantRequests)
			}
		})
	}
}

// TestWriteVerifiesTheAPIServer: an API server whose certificate the
// cluster's CA did not sign never receives the token.
func TestWriteVerifiesTheAPIServer(t *testing.T) {
	f := newFakeAPI(t, http.StatusOK)
	tgt := f.target(t, "secret-token")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another cluster's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tgt.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	w := writer(t, tgt)
	w.Attempts = 1
	if err := w.Write(context.Background(), "{}"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Write to an unverified server = %v; want a certificate error", err)
	}
	if n := len(f.seen()); n != 0 {
		t.Errorf("the unverified server got %d requests", n)
	}
}

func TestWriteStopsWithItsContext(t *testing.T) {
	f := newFakeAPI(t, http.StatusServiceUnavailable)
	w := writer(t, f.target(t, "t"))
	w.Backoff = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	f.onRequest = func(int) { cancel() }
	if err := w.Write(ctx, "{}"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %v; want it stopped by its context", err)
	}
}

// TestNewSaysWhyReportingIsOff: each missing piece of a pod's environment
// is named, so that inferd's log says why it does not report.
func TestNewSaysWhyReportingIsOff(t *testing.T) {
	f := newFakeAPI(t, http.StatusOK)
	ok := f.target(t, "t")
	for name, tc := range map[string]struct {
		mutate func(*Target)
		says   string
	}{
		"not in a pod":     {func(t *Target) { t.Server = "" }, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set"},
		"no pod name":      {func(t *Target) { t.Pod = "" }, "INFERD_POD_NAME and INFERD_POD_NAMESPACE are not set"},
		"no token mounted": {func(t *Target) { t.TokenFile = filepath.Join(filepath.Dir(t.TokenFile), "none") }, "no ServiceAccount token is mounted at"},
		"no CA":            {func(t *Target) { t.CAFile = t.TokenFile }, "holds no PEM certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			tgt := ok
			tc.mutate(&tgt)
			if _, err := New(tgt, logr.Discard()); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("New = %v; want an error saying %q", err, tc.says)
			}
		})
	}
}

func TestTargetFromEnv(t *testing.T) {
	env := map[string]string{EnvServiceHost: "fd00::1", EnvServicePort: "443", config.EnvPodName: "p", config.EnvPodNamespace: "edge"}
	got := TargetFromEnv(func(k string) string { return env[k] })
	want := Target{Server: "[fd00::1]:443", Namespace: "edge", Pod: "p", TokenFile: DefaultTokenFile, CAFile: DefaultCAFile}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
