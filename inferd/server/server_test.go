package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/engine/bigram/bigramtest"
	"github.com/slmops/slmops/inferd/gguf"
)

// serve starts a Server over a real generated model behind a real HTTP server.
func serve(t testing.TB, o Options, ready bool) (*Server, *httptest.Server) {
	t.Helper()
	e := bigramtest.Engine(t, bigram.BuildOptions{Type: gguf.Q8_0, ContextLength: 512})
	if o.ModelName == "" {
		o.ModelName = "tiny"
	}
	o.Log = logr.Discard()
	s := New(o)
	s.SetEngine(e)
	if ready {
		s.SetReady()
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

func post(t *testing.T, url, body string) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s answered %d with a body that is not JSON: %q", url, resp.StatusCode, raw)
	}
	return resp, out
}

func TestEveryBadRequestGetsA4xxWithAnOpenAIErrorBody(t *testing.T) {
	_, ts := serve(t, Options{MaxRequestBytes: 4096, Concurrency: 1}, true)
	chat, compl := ts.URL+"/v1/chat/completions", ts.URL+"/v1/completions"
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	for name, tc := range map[string]struct {
		url, body string
		status    int
		param     string
		says      string
	}{
		"a body that is not JSON":             {chat, `{"model":`, 400, "", "not valid JSON"},
		"an empty body":                       {chat, ``, 400, "", "empty"},
		"a field of the wrong type":           {chat, `{"model":"tiny","max_tokens":"ten",` + msgs + `}`, 400, "max_tokens", "wrong type: a JSON string"},
		"no model":                            {chat, `{` + msgs + `}`, 400, "model", "model is required"},
		"another model":                       {chat, `{"model":"gpt-4",` + msgs + `}`, 404, "model", `"gpt-4" does not exist`},
		"max_tokens 0":                        {chat, `{"model":"tiny","max_tokens":0,` + msgs + `}`, 400, "max_tokens", "at least 1"},
		"max_tokens past the context":         {chat, `{"model":"tiny","max_tokens":100000,` + msgs + `}`, 400, "max_tokens", "more than this model allows (512)"},
		"max_completion_tokens past it":       {chat, `{"model":"tiny","max_completion_tokens":513,` + msgs + `}`, 400, "max_completion_tokens", "allows"},
		"temperature 3":                       {chat, `{"model":"tiny","temperature":3,` + msgs + `}`, 400, "temperature", "between 0 and 2"},
		"top_p 1.5":                           {chat, `{"model":"tiny","top_p":1.5,` + msgs + `}`, 400, "top_p", "between 0 and 1"},
		"top_k -1":                            {chat, `{"model":"tiny","top_k":-1,` + msgs + `}`, 400, "top_k", "0 (off) or positive"},
		"n 2":                                 {chat, `{"model":"tiny","n":2,` + msgs + `}`, 400, "n", "n must be 1"},
		"five stop sequences":                 {chat, `{"model":"tiny","stop":["a","b","c","d","e"],` + msgs + `}`, 400, "stop", "at most 4"},
		"a stop that is a number":             {chat, `{"model":"tiny","stop":7,` + msgs + `}`, 400, "stop", "string or an array"},
		"logprobs":                            {chat, `{"model":"tiny","logprobs":true,` + msgs + `}`, 400, "logprobs", "not supported"},
		"stream_options without stream":       {chat, `{"model":"tiny","stream_options":{"include_usage":true},` + msgs + `}`, 400, "stream_options", "stream: true"},
		"no messages":                         {chat, `{"model":"tiny","messages":[]}`, 400, "messages", "1 to 256"},
		"a tool message":                      {chat, `{"model":"tiny","messages":[{"role":"tool","content":"x"}]}`, 400, "messages[0].role", `"tool" is not supported`},
		"an image part":                       {chat, `{"model":"tiny","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "messages[0].content", `"image_url" is not supported`},
		"tools":                               {chat, `{"model":"tiny","tools":[{"type":"function"}],` + msgs + `}`, 400, "tools", "not supported"},
		"json response format":                {chat, `{"model":"tiny","response_format":{"type":"json_object"},` + msgs + `}`, 400, "response_format", "not supported"},
		"a body past the limit":               {chat, `{"model":"tiny",` + msgs + `,"user":"` + strings.Repeat("x", 5000) + `"}`, 413, "", "larger than 4096 bytes"},
		"no prompt":                           {compl, `{"model":"tiny"}`, 400, "prompt", "prompt is required"},
		"a token-array prompt":                {compl, `{"model":"tiny","prompt":[1,2,3]}`, 400, "prompt", "token arrays"},
		"two prompts":                         {compl, `{"model":"tiny","prompt":["a","b"]}`, 400, "prompt", "array of 2"},
		"echo":                                {compl, `{"model":"tiny","prompt":"a","echo":true}`, 400, "echo", "not supported"},
		"a prompt longer than the context":    {compl, `{"model":"tiny","max_tokens":1,"prompt":"` + strings.Repeat("x ", 600) + `"}`, 400, "", "context holds 512"},
		"an unknown endpoint":                 {ts.URL + "/v1/embeddings", `{}`, 404, "", "no endpoint POST /v1/embeddings"},
		"an unknown model in /v1/models/{id}": {ts.URL + "/v1/models/nope", ``, 404, "model", `"nope" does not exist`},
	} {
		t.Run(name, func(t *testing.T) {
			var resp *http.Response
			var body map[string]any
			if strings.Contains(tc.url, "/v1/models/") {
				r, err := http.Get(tc.url)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Body.Close()
				resp = r
				_ = json.NewDecoder(r.Body).Decode(&body)
			} else {
				resp, body = post(t, tc.url, tc.body)
			}
			e, _ := body["error"].(map[string]any)
			if resp.StatusCode != tc.status || e == nil {
				t.Fatalf("status %d body %v; want %d with an error object", resp.StatusCode, body, tc.status)
			}
			msg, _ := e["message"].(string)
			if !strings.Contains(msg, tc.says) || e["type"] == "" {
				t.Errorf("error %v; want a message saying %q", e, tc.says)
			}
			if p, _ := e["param"].(string); p != tc.param {
				t.Errorf("param %q; want %q", p, tc.param)
			}
		})
	}
	// A wrong method on an API path is a 405 in the same shape.
	resp, err := http.Get(compl)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/completions: %d; want 405", resp.StatusCode)
	}
}

func TestNotReadyRefusesWithModelNotReady(t *testing.T) {
	s, ts := serve(t, Options{Concurrency: 1}, false)
	s.SetPhase(PhaseSelfTesting, "SelfTesting", "running the self-test")
	resp, body := post(t, ts.URL+"/v1/completions", `{"model":"tiny","prompt":"hi"}`)
	e, _ := body["error"].(map[string]any)
	if resp.StatusCode != 503 || e["code"] != "model_not_ready" || !strings.Contains(e["message"].(string), "SelfTesting") {
		t.Errorf("%d %v; want 503 model_not_ready naming the phase", resp.StatusCode, body)
	}
	r, _ := http.Get(ts.URL + "/readyz")
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 503 || !strings.Contains(string(b), "running the self-test") {
		t.Errorf("/readyz %d %q; want 503 with the reason", r.StatusCode, b)
	}
	r, _ = http.Get(ts.URL + "/healthz")
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Errorf("/healthz %d while not ready; want 200 (alive)", r.StatusCode)
	}
	s.SetReady()
	r, _ = http.Get(ts.URL + "/readyz")
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Errorf("/readyz %d after SetReady", r.StatusCode)
	}
}

func TestAStreamEndsWithDoneAndUsage(t *testing.T) {
	_, ts := serve(t, Options{Concurrency: 1}, true)
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(
		`{"model":"tiny","prompt":"slmops","max_tokens":5,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	var text strings.Builder
	var events []map[string]any
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q is not JSON", line)
		}
		events = append(events, ev)
		if ch, _ := ev["choices"].([]any); len(ch) == 1 {
			text.WriteString(ch[0].(map[string]any)["text"].(string))
		}
	}
	last := events[len(events)-1]
	u, _ := last["usage"].(map[string]any)
	if !done || u == nil || u["completion_tokens"].(float64) != 5 || u["total_tokens"].(float64) != u["prompt_tokens"].(float64)+5 {
		t.Fatalf("done=%v, last event %v; want [DONE] after a usage chunk with 5 completion tokens", done, last)
	}
	if !strings.HasPrefix(text.String(), " ships small language models") {
		t.Errorf("streamed text %q", text.String())
	}
}

// TestRequestSeriesExistBeforeTheFirstRequest: every endpoint's request
// count and duration are on /metrics at 0 before any request, so that
// Prometheus's rate() sees the first requests rise from 0.
func TestRequestSeriesExistBeforeTheFirstRequest(t *testing.T) {
	_, ts := serve(t, Options{}, true)
	resp, err := http.Get(ts.URL + "/metrics") //nolint:noctx // a test's one request
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	body := string(raw)
	for _, e := range []string{"models", "completions", "chat_completions"} {
		for _, series := range []string{
			`slmops_inferd_requests_total{code="200",endpoint="` + e + `"} 0`,
			`slmops_inferd_request_duration_seconds_count{endpoint="` + e + `"} 0`,
		} {
			if !strings.Contains(body, series) {
				t.Errorf("/metrics before any request lacks %s", series)
			}
		}
	}
}
