package redact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://host/m.gguf": "https://host/m.gguf",
		"https://host/m.gguf?X-Amz-Signature=SECRET&X-Amz-Expires=900": "https://host/m.gguf?REDACTED",
		"https://user:PASS@host:8443/a/m.gguf?sig=SECRET#frag":         "https://host:8443/a/m.gguf?REDACTED",
		"http://user@host/m.gguf":                                      "http://host/m.gguf",
		"http://user:***@host/m.gguf?":                                 "http://host/m.gguf?REDACTED",
		"oci://registry.example/models/tiny:v1":                        "oci://registry.example/models/tiny:v1",
		"http://us er:PA SS@host/%zz?sig=SECRET":                       "http://host/%zz?REDACTED",
	} {
		if got := URL(raw); got != want {
			t.Errorf("URL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestText(t *testing.T) {
	msg := `Get "https://user:PASS@s3.example/b/m.gguf?X-Amz-Signature=SECRET": dial tcp 10.0.0.1:443: i/o timeout; then https://a.example/x?sig=SECRET, sha256:abc`
	want := `Get "https://s3.example/b/m.gguf?REDACTED": dial tcp 10.0.0.1:443: i/o timeout; then https://a.example/x?REDACTED, sha256:abc`
	if got := Text(msg); got != want {
		t.Errorf("Text:\n got %s\nwant %s", got, want)
	}
}

func TestErrorKeepsTheClassButNotTheURLError(t *testing.T) {
	orig := &url.Error{Op: "Get", URL: "https://user:PASS@host/m?sig=SECRET", Err: context.DeadlineExceeded}
	err := Error(fmt.Errorf("fetch: %w", orig))
	if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "PASS") {
		t.Errorf("redacted error leaks: %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("the redacted error lost its class")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		t.Error("the raw *url.Error is reachable through the redacted error")
	}
	if Error(nil) != nil {
		t.Error("Error(nil) is not nil")
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewJSONHandler(&buf, nil))).With("source", "https://h/m?sig=SECRET")
	log.Info("Fetching https://user:PASS@h/m", "error", errors.New(`Get "https://h/m?X-Amz-Signature=SECRET": EOF`),
		slog.Group("g", "url", "https://h/m?sig=SECRET"), "peers", []string{"http://u:PASS@p/x"})
	out := buf.String()
	if strings.Contains(out, "SECRET") || strings.Contains(out, "PASS") || !strings.Contains(out, "https://h/m?REDACTED") {
		t.Errorf("log record: %s", out)
	}
}
