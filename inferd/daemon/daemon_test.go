package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/fetch"
	"github.com/slmops/slmops/inferd/fetch/redact"
)

func TestFetchFailure(t *testing.T) {
	rejected := rejection(t)
	for name, tc := range map[string]struct {
		err        error
		stage      bool
		round, mis int
		reason     string
		final      bool
	}{
		"a 404 is the origin's rejection, final at once": {err: fmt.Errorf("3 peers, then: %w", rejected), round: 1, reason: ReasonOriginRejected, final: true},
		"a stager's first 404 is final":                  {err: rejected, stage: true, round: 1, reason: ReasonOriginRejected, final: true},
		"a first wrong digest is retried":                {err: fetch.ErrDigestMismatch, round: 1, mis: 1, reason: ReasonDigestMismatch},
		"the third wrong digest in a row is final":       {err: fetch.ErrDigestMismatch, round: 3, mis: 3, reason: ReasonDigestMismatch, final: true},
		"too many bytes count as a wrong digest":         {err: fetch.ErrTooLarge, stage: true, round: 3, mis: 3, reason: ReasonDigestMismatch, final: true},
		"a stager gives up after its rounds":             {err: errors.New("dial tcp: refused"), stage: true, round: 3, reason: ReasonFetchFailed, final: true},
		"a serving pod keeps trying":                     {err: errors.New("dial tcp: refused"), round: 30, reason: ReasonFetchRetrying},
		"another permanent answer fails the fetch":       {err: fetch.ErrPermanent, round: 1, reason: ReasonFetchFailed, final: true},
		"a full disk ends a stager":                      {err: fetch.ErrNoSpace, stage: true, round: 1, reason: ReasonInsufficientDisk, final: true},
		"a full disk keeps a serving pod waiting":        {err: fetch.ErrNoSpace, round: 1, reason: ReasonInsufficientDisk},
	} {
		reason, final := fetchFailure(tc.err, tc.stage, tc.round, tc.mis)
		if reason != tc.reason || final != tc.final {
			t.Errorf("%s: got %s, final %v; want %s, %v", name, reason, final, tc.reason, tc.final)
		}
	}
}

// rejection is the error of a fetch from an origin that answers 404.
func rejection(t *testing.T) error {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	f := &fetch.Fetcher{CacheDir: t.TempDir()}
	_, err := f.Fetch(context.Background(), srv.URL+"/m.gguf", "sha256:"+strings.Repeat("0", 64), 0)
	if !errors.Is(err, fetch.ErrRejected) {
		t.Fatalf("want a rejection, got %v", err)
	}
	return err
}

// signedURL puts user:PASS@ and a signature into base.
func signedURL(base string) string {
	u, _ := url.Parse(base)
	u.User = url.UserPassword("user", "PASS")
	u.Path += "/m.gguf"
	u.RawQuery = "X-Amz-Expires=900&X-Amz-Signature=SECRET"
	return u.String()
}

// TestNoOutputOfInferdCarriesTheSecretsOfASignedURL runs a stager against
// an origin URL with userinfo and a signature on every way a fetch fails,
// and reads all it says: the log, /status, the termination message and
// Run's error.
func TestNoOutputOfInferdCarriesTheSecretsOfASignedURL(t *testing.T) {
	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String()
	}
	answering := func(code int) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", code) }))
		t.Cleanup(s.Close)
		return s.URL
	}
	redirecting := func(target string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) }))
		t.Cleanup(s.Close)
		return s.URL
	}
	tlsOrigin := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsOrigin.Config.ErrorLog = newDiscardLog()
	tlsOrigin.StartTLS()
	defer tlsOrigin.Close()

	registry := func(target string) string { // every request redirected, as to signed storage
		return strings.TrimPrefix(redirecting(target), "http://") + "/models/tiny:q4"
	}
	for name, tc := range map[string]struct {
		url, oci string
		reason   string
	}{
		"an OCI registry redirecting to a signed 403": {oci: registry(signedURL(answering(http.StatusForbidden))), reason: ReasonOriginRejected},
		"an OCI registry redirecting to a dead URL":   {oci: registry(signedURL(dead())), reason: ReasonFetchFailed},
		"a dial error":                 {url: signedURL(dead()), reason: ReasonFetchFailed},
		"a TLS error":                  {url: signedURL(tlsOrigin.URL), reason: ReasonFetchFailed},
		"a redirect to a dead target":  {url: signedURL(redirecting(signedURL(dead()))), reason: ReasonFetchFailed},
		"a redirect to a 403":          {url: signedURL(redirecting(signedURL(answering(http.StatusForbidden)))), reason: ReasonOriginRejected},
		"a 404":                        {url: signedURL(answering(http.StatusNotFound)), reason: ReasonOriginRejected},
		"a 500":                        {url: signedURL(answering(http.StatusInternalServerError)), reason: ReasonFetchFailed},
		"an unparsable URL with a 404": {url: strings.Replace(signedURL(answering(http.StatusNotFound)), "/m.gguf", "/m%zz.gguf", 1), reason: ReasonFetchFailed},
	} {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			dir := t.TempDir()
			cfg := &config.Config{
				Model: config.Model{Name: "tiny", URL: tc.url, OCI: tc.oci, AllowInsecureHTTP: true, Digest: "sha256:" + strings.Repeat("ab", 32)},
				Stage: true, CacheDir: filepath.Join(dir, "cache"), Port: 8080,
			}
			termination := filepath.Join(dir, "termination-log")
			d := New(cfg, Options{
				Listen: "127.0.0.1:0", NodeName: "edge-1", TerminationLog: termination, RetryBackoff: time.Millisecond,
				Log: logr.FromSlogHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.Level(-1)})),
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			runErr := d.Run(ctx)
			if !errors.Is(runErr, ErrStageFailed) {
				t.Fatalf("Run: %v; want the stager to exit", runErr)
			}
			rec := httptest.NewRecorder()
			d.Server().Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
			term, err := os.ReadFile(termination)
			if err != nil {
				t.Fatal(err)
			}
			outputs := map[string]string{"the log": logs.String(), "/status": rec.Body.String(), "the termination message": string(term), "Run's error": runErr.Error()}
			for what, out := range outputs {
				if strings.Contains(out, "SECRET") || strings.Contains(out, "PASS") || strings.Contains(out, "user@") {
					t.Errorf("%s leaks a secret:\n%s", what, out)
				}
			}
			if !strings.HasPrefix(string(term), tc.reason+": ") || !strings.Contains(string(term), "?"+redact.Query) {
				t.Errorf("termination message %q; want %s: ... naming the redacted URL", term, tc.reason)
			}
			t.Logf("%s", term)
		})
	}
}

func newDiscardLog() *log.Logger { return log.New(io.Discard, "", 0) }
