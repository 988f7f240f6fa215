package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestTheAPINeedsItsTokenWhenOneIsSet: with an API token, every API call
// without it, or with another, is a 401 with an OpenAI error body that does
// not echo what was sent; the right token is served; probes, /status and
// /metrics stay open for the kubelet and Prometheus.
func TestTheAPINeedsItsTokenWhenOneIsSet(t *testing.T) {
	const token = "s3cret-token"
	_, ts := serve(t, Options{Concurrency: 1, APIToken: token}, true)
	chat := `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`
	call := func(method, path, auth, body string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, auth := range []string{"", "Bearer wrong", "Basic " + token, "Bearer " + token + "x", "bearer " + token} {
		for _, ep := range []struct{ method, path, body string }{
			{"GET", "/v1/models", ""}, {"GET", "/v1/models/tiny", ""},
			{"POST", "/v1/chat/completions", chat}, {"POST", "/v1/completions", `{"model":"tiny","prompt":"a","max_tokens":2}`},
			{"GET", "/v1/nothing", ""},
		} {
			code, body, h := call(ep.method, ep.path, auth, ep.body)
			if code != http.StatusUnauthorized || !strings.Contains(body, "invalid_api_key") || h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %q: %d %s; want 401 invalid_api_key with WWW-Authenticate", ep.method, ep.path, auth, code, body)
			}
			if strings.Contains(body, "wrong") || strings.Contains(body, token) {
				t.Errorf("%s %s: the answer echoes the credentials: %s", ep.method, ep.path, body)
			}
		}
	}
	if code, body, _ := call("POST", "/v1/chat/completions", "Bearer "+token, chat); code != http.StatusOK {
		t.Errorf("with the token: %d %s; want 200", code, body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/status", "/metrics"} {
		if code, body, _ := call("GET", path, "", ""); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d %s; want 200", path, code, body)
		}
	}

	// Without a token the API is open, as before.
	_, open := serve(t, Options{Concurrency: 1}, true)
	resp, err := http.Get(open.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("no token set: /v1/models answered %d; want 200", resp.StatusCode)
	}
}
