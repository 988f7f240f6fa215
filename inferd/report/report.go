// Package report writes inferd's self-test report into the annotation
// config.ReportAnnotation of inferd's own pod, where the operator reads it
// from the pods it already watches: one JSON merge patch per pod, sent with
// the pod's ServiceAccount token to the API server the pod's environment
// names, over TLS verified against the cluster's CA.
//
// What it owns: that one request, its retries, and saying why a report
// could not be written. What it may not touch: readiness (a report that
// cannot be written never keeps inferd unready or stops it), anything of the
// pod but that annotation (the API server's admission policy enforces it),
// and the token itself in any log or error.
//
// It uses net/http alone: inferd carries no Kubernetes client library.
package report

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/slmops/slmops/inferd/config"
)

// Where a pod finds its ServiceAccount token and the cluster's CA when the
// token is mounted (automountServiceAccountToken).
const (
	DefaultTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// The environment variables the kubelet sets in every pod for the API server.
const (
	EnvServiceHost = "KUBERNETES_SERVICE_HOST"
	EnvServicePort = "KUBERNETES_SERVICE_PORT"
)

// ErrRejected wraps an answer that retrying cannot change (403 from RBAC or
// the admission policy, 404, 422): the writer gives up at once.
var ErrRejected = errors.New("the API server rejected the report")

// maxAPIMessage bounds what an error quotes of the API server's answer.
const maxAPIMessage = 512

// Writer writes the report of one pod.
type Writer struct {
	// URL is the pod's address in the API: https://<api
	// server>/api/v1/namespaces/<namespace>/pods/<name>.
	URL string
	// TokenFile is read before each attempt: projected tokens rotate.
	TokenFile string
	// Client verifies the API server against the cluster's CA.
	Client *http.Client
	// Attempts bounds the tries (default 6); Backoff is the first wait after
	// a failed one (default 2s), doubling up to a minute.
	Attempts int
	Backoff  time.Duration
	// AttemptTimeout bounds one request (default 15s).
	AttemptTimeout time.Duration
	// Log never receives the token.
	Log logr.Logger
}

// Target is a pod and the API server it is reached through.
type Target struct {
	// Server is host:port of the API server.
	Server string
	// Namespace and Pod name the pod.
	Namespace, Pod string
	// TokenFile and CAFile are the ServiceAccount's token and the cluster's CA.
	TokenFile, CAFile string
}

// TargetFromEnv is the pod inferd runs in as its environment describes it:
// the API server from the kubelet's KUBERNETES_SERVICE_HOST and _PORT, the
// pod from the downward API's config.EnvPodName and config.EnvPodNamespace,
// the default token and CA files.
func TargetFromEnv(getenv func(string) string) Target {
	t := Target{
		Namespace: getenv(config.EnvPodNamespace), Pod: getenv(config.EnvPodName),
		TokenFile: DefaultTokenFile, CAFile: DefaultCAFile,
	}
	if host, port := getenv(EnvServiceHost), getenv(EnvServicePort); host != "" && port != "" {
		t.Server = net.JoinHostPort(host, port)
	}
	return t
}

// New is the Writer for t. Its error says why inferd cannot report (which
// turns reporting off, never inferd): not in a pod, no pod name, no token
// mounted, no CA.
func New(t Target, log logr.Logger) (*Writer, error) {
	switch {
	case t.Server == "":
		return nil, fmt.Errorf("no API server: %s and %s are not set (inferd is not running in a pod)", EnvServiceHost, EnvServicePort)
	case t.Pod == "" || t.Namespace == "":
		return nil, fmt.Errorf("the pod is unknown: %s and %s are not set (the pod template passes them from the downward API)", config.EnvPodName, config.EnvPodNamespace)
	}
	if _, err := os.Stat(t.TokenFile); err != nil {
		return nil, fmt.Errorf("no ServiceAccount token is mounted at %s (the pod's automountServiceAccountToken is false or it has no ServiceAccount): %w", t.TokenFile, err)
	}
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read the cluster's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("the cluster's CA %s holds no PEM certificate", t.CAFile)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        1,
		IdleConnTimeout:     30 * time.Second,
	}
	u := url.URL{Scheme: "https", Host: t.Server,
		Path: "/api/v1/namespaces/" + url.PathEscape(t.Namespace) + "/pods/" + url.PathEscape(t.Pod)}
	return &Writer{URL: u.String(), TokenFile: t.TokenFile, Client: &http.Client{Transport: tr}, Log: log}, nil
}

// Patch is the JSON merge patch that sets the annotation to value and
// nothing else.
func Patch(value string) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{config.ReportAnnotation: value}}})
	return b
}

// Write sets the report annotation to value, retrying what a retry can fix
// (the network, 401 while a token rotates, 409, 429, 5xx) with back-off
// until the attempts are spent or ctx is done. It returns after the first
// success or rejection; its error never holds the token.
func (w *Writer) Write(ctx context.Context, value string) error {
	attempts := w.Attempts
	if attempts <= 0 {
		attempts = 6
	}
	backoff := w.Backoff
	if backoff <= 0 {
		backoff = 2 * time.Second
	}
	body := Patch(value)
	var err error
	for attempt := 1; ; attempt++ {
		err = w.attempt(ctx, body)
		if err == nil {
			w.Log.Info("Wrote the self-test report to the pod", "annotation", config.ReportAnnotation, "attempts", attempt)
			return nil
		}
		if errors.Is(err, ErrRejected) || attempt >= attempts {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("write the self-test report: %w (stopped: %w)", err, ctx.Err())
		}
		w.Log.V(1).Info("Writing the self-test report failed; retrying", "error", err.Error(), "after", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("write the self-test report: %w (stopped: %w)", err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, time.Minute)
	}
	return fmt.Errorf("write the self-test report: %w", err)
}

func (w *Writer) attempt(ctx context.Context, body []byte) error {
	token, err := os.ReadFile(w.TokenFile)
	if err != nil {
		return fmt.Errorf("read the ServiceAccount token: %w", err)
	}
	timeout := w.AttemptTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("PATCH %s: %s: %s", w.URL, resp.Status, apiMessage(raw))
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusConflict, http.StatusTooManyRequests:
		return err
	}
	if resp.StatusCode >= 500 {
		return err
	}
	return fmt.Errorf("%w: %w", ErrRejected, err)
}

// apiMessage is the message of a metav1.Status answer (the admission
// policy's words on a denial), cut short.
func apiMessage(raw []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	if len(msg) > maxAPIMessage {
		msg = msg[:maxAPIMessage-3] + "..."
	}
	return msg
}
