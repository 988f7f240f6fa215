package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequests sends arbitrary bodies to both generation endpoints. Whatever
// the body, inferd answers 200 or a 4xx with an OpenAI error object, never
// a 5xx or a panic. `make test` runs the seeds.
func FuzzRequests(f *testing.F) {
	for _, seed := range []string{
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`,
		`{"model":"tiny","prompt":"slmops","max_tokens":4,"stream":true,"stop":["."]}`,
		`{"model":"tiny","prompt":["a"],"max_tokens":2,"temperature":0.5,"top_p":0.5,"seed":3}`,
		`{"model":"tiny","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"max_tokens":1}`,
		`{"model":"tiny","prompt":"x","max_tokens":-1}`, `{"model":"tiny","stop":[""]}`, `[]`, `null`, `{`, ``,
		`{"model":"tiny","prompt":"\xff\xfe","max_tokens":3}`,
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	s, _ := serve(f, Options{Concurrency: 2, QueueDepth: 2, MaxRequestBytes: 1 << 16, MaxTokens: 32}, true)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body string, chat bool) {
		path := "/v1/completions"
		if chat {
			path = "/v1/chat/completions"
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		switch {
		case rec.Code == http.StatusOK:
		case rec.Code >= 400 && rec.Code < 500:
			var e struct {
				Error *apiError `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == nil || e.Error.Message == "" {
				t.Fatalf("%d with a body that is not an OpenAI error: %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("body %q answered %d: %s", body, rec.Code, rec.Body.String())
		}
	})
}
