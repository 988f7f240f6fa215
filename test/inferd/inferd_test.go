package inferd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/daemon"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/selftest"
	"github.com/slmops/slmops/inferd/server"
)

// goldenSelfTest passes on any node: the corpus's one path from "slmops".
func goldenSelfTest() *config.SelfTest {
	return &config.SelfTest{Prompts: []config.Prompt{{Prompt: "slmops", MaxTokens: 6, ExpectContains: "small language"}}, Timeout: time.Minute}
}

// TestTheOpenAIClientTalksToInferd: the official OpenAI Go client streams a
// chat completion and makes a plain completion, with usage counts.
func TestTheOpenAIClientTalksToInferd(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	cfg := baseConfig(t, "tiny", m, origin(t, m.data, nil).URL+"/tiny.gguf")
	cfg.SelfTest = goldenSelfTest()
	p := start(t, cfg)
	p.waitPhase(server.PhaseReady, 30*time.Second)

	ctx := context.Background()
	client := openai.NewClient(option.WithBaseURL(p.url+"/v1/"), option.WithAPIKey("not-needed"), option.WithMaxRetries(0))

	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "tiny" {
		t.Fatalf("models: %+v, %v", models, err)
	}

	const secret = "the-secret-prompt-7f3a"
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "tiny",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You run at the edge."), openai.UserMessage("hello " + secret)},
		MaxTokens:     openai.Int(24),
		Seed:          openai.Int(42),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	acc := openai.ChatCompletionAccumulator{}
	var deltas []string
	for stream.Next() {
		chunk := stream.Current()
		acc.AddChunk(chunk)
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
			deltas = append(deltas, chunk.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(deltas) < 2 {
		t.Errorf("the answer came in %d deltas; a stream sends one per token", len(deltas))
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != strings.Join(deltas, "") || acc.Choices[0].FinishReason == "" {
		t.Errorf("accumulated %+v from deltas %q", acc.Choices, deltas)
	}
	u := acc.Usage
	if u.PromptTokens == 0 || u.CompletionTokens == 0 || u.CompletionTokens > 24 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("stream usage %+v", u)
	}

	// A plain completion runs to max_tokens (or an end) and counts tokens.
	c, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:       "tiny",
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("slmops")},
		MaxTokens:   openai.Int(4),
		Temperature: openai.Float(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 || c.Choices[0].Text != " ships small language models" || c.Choices[0].FinishReason != "length" {
		t.Errorf("completion %+v", c.Choices)
	}
	if c.Usage.CompletionTokens != 4 || c.Usage.PromptTokens != 2 || c.Usage.TotalTokens != 6 {
		t.Errorf("completion usage %+v; want 2 prompt + 4 completion tokens", c.Usage)
	}

	// A 4xx reaches the client as an *openai.Error with the message.
	_, err = client.Completions.New(ctx, openai.CompletionNewParams{
		Model: "tiny", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")}, MaxTokens: openai.Int(100000),
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "max_tokens") {
		t.Errorf("max_tokens 100000: %v; want a 400 the client parses", err)
	}

	if got := p.metric("slmops_inferd_generated_tokens_total"); got < float64(u.CompletionTokens+4) {
		t.Errorf("slmops_inferd_generated_tokens_total %v; want at least %d", got, u.CompletionTokens+4)
	}
	if logs := p.Logs(); strings.Contains(logs, secret) || strings.Contains(logs, "You run at the edge") {
		t.Error("a prompt reached inferd's log")
	}
}

// TestReadinessWaitsForLoadAndSelfTest: /readyz answers 503 while the model
// downloads and 200 only once it is loaded and its self-test passed.
func TestReadinessWaitsForLoadAndSelfTest(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	gate := make(chan struct{})
	cfg := baseConfig(t, "tiny", m, origin(t, m.data, gate).URL+"/tiny.gguf")
	cfg.SelfTest = goldenSelfTest()
	p := start(t, cfg)

	st := p.waitPhase(server.PhaseFetching, 10*time.Second)
	for range 5 {
		if code := p.readyz(); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz answered %d while the model is downloading", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Ready || st.Model.Digest != m.digest || st.Node != "edge-test-0001" {
		t.Errorf("status while fetching: %+v", st)
	}
	close(gate)
	st = p.waitPhase(server.PhaseReady, 30*time.Second)
	if code := p.readyz(); code != http.StatusOK {
		t.Fatalf("/readyz %d after Ready", code)
	}
	if st.SelfTest == nil || !st.SelfTest.Passed || !st.SelfTest.Gated || st.SelfTest.TokensPerSecond <= 0 || st.SelfTest.Prompts[0].AnswerMatched == nil {
		t.Errorf("self-test in status: %+v", st.SelfTest)
	}
	if st.Model.LoadSeconds <= 0 || st.Model.Quantization != "Q8_0" || st.Model.Architecture != bigram.Architecture ||
		st.Model.DownloadBytes != int64(len(m.data)) || st.Model.CacheHit || st.ReadyAt == nil {
		t.Errorf("model in status: %+v", st.Model)
	}
	if got := p.metric("slmops_inferd_download_bytes_total"); got != float64(len(m.data)) {
		t.Errorf("slmops_inferd_download_bytes_total %v; want %d", got, len(m.data))
	}
	if p.metric("slmops_inferd_ready") != 1 || p.metric("slmops_inferd_model_load_seconds") <= 0 || p.metric("slmops_inferd_self_test_tokens_per_second") <= 0 {
		t.Error("ready, load and self-test metrics are not set")
	}
	code, msg := p.terminate(30 * time.Second)
	if code != 0 || !strings.HasPrefix(msg, "Ready: served "+m.digest) {
		t.Errorf("exit %d, termination message %q", code, msg)
	}

	// A second inferd on the node finds the verified file in the cache.
	again := start(t, cfg)
	st = again.waitPhase(server.PhaseReady, 30*time.Second)
	if !st.Model.CacheHit || st.Model.DownloadBytes != 0 || again.metric("slmops_inferd_cache_hits_total") != 1 {
		t.Errorf("restart: cache hit %v, %d bytes downloaded", st.Model.CacheHit, st.Model.DownloadBytes)
	}
}

// TestAnUnmeetableSelfTestKeepsInferdUnready: the reason is in /status, the
// API refuses with model_not_ready, and the termination message says why.
func TestAnUnmeetableSelfTestKeepsInferdUnready(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	cfg := baseConfig(t, "tiny", m, origin(t, m.data, nil).URL+"/tiny.gguf")
	cfg.SelfTest = goldenSelfTest()
	cfg.SelfTest.MinTokensPerSecond = 2_000_000_000
	p := start(t, cfg)
	st := p.waitPhase(server.PhaseFailed, 30*time.Second)
	if st.Reason != daemon.ReasonSelfTestFailed || st.SelfTest == nil || st.SelfTest.Reason != selftest.ReasonTooSlow ||
		!strings.Contains(st.Message, "the model needs at least 2000000000") {
		t.Errorf("status %s %q, self-test %+v", st.Reason, st.Message, st.SelfTest)
	}
	for range 10 {
		if code := p.readyz(); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz %d after a failed self-test", code)
		}
		time.Sleep(30 * time.Millisecond)
	}
	resp, err := http.Post(p.url+"/v1/completions", "application/json", strings.NewReader(`{"model":"tiny","prompt":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "model_not_ready") {
		t.Errorf("API while unready: %d %s", resp.StatusCode, body)
	}
	code, msg := p.terminate(30 * time.Second)
	if code != 0 || !strings.Contains(msg, "SelfTestFailed") || !strings.Contains(msg, "TooSlow") {
		t.Errorf("exit %d, termination message %q", code, msg)
	}
}

// TestABadModelNeverServes: a corrupt download, a file that is not GGUF
// (with a matching digest) and a file that is not what the SLMModel
// declares all end Failed with the reason, and never Ready.
func TestABadModelNeverServes(t *testing.T) {
	good := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	corrupt := append([]byte(nil), good.data...)
	corrupt[len(corrupt)/2] ^= 0xff
	notGGUF := modelFile{data: []byte(strings.Repeat("this is not a model\n", 100))}
	notGGUF.digest = generateDigest(notGGUF.data)
	f16 := generate(t, bigram.BuildOptions{Type: gguf.F16})

	for name, tc := range map[string]struct {
		serve   []byte
		model   modelFile
		mutate  func(*config.Config)
		reason  string
		message string
	}{
		"a corrupted byte": {corrupt, good, nil, daemon.ReasonDigestMismatch, "digest mismatch"},
		"a file that is not GGUF": {notGGUF.data, notGGUF, func(c *config.Config) { c.Model.SizeBytes = 0 },
			daemon.ReasonInvalidModel, "magic"},
		"another quantization than declared": {f16.data, f16, nil, daemon.ReasonUnsupported, `the file's quantization is "F16", the SLMModel declares "Q8_0"`},
		"a 404 source":                       {nil, good, nil, daemon.ReasonOriginRejected, "404"},
	} {
		t.Run(name, func(t *testing.T) {
			var url string
			if tc.serve != nil {
				url = origin(t, tc.serve, nil).URL + "/m.gguf"
			} else {
				nf := httptest.NewServer(http.NotFoundHandler())
				t.Cleanup(nf.Close)
				url = nf.URL + "/m.gguf"
			}
			cfg := baseConfig(t, "tiny", tc.model, url)
			cfg.SelfTest = goldenSelfTest()
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			p := start(t, cfg)
			st := p.waitPhase(server.PhaseFailed, 30*time.Second)
			if st.Reason != tc.reason || !strings.Contains(st.Message, tc.message) {
				t.Errorf("status %s %q; want %s saying %q", st.Reason, st.Message, tc.reason, tc.message)
			}
			if p.readyz() != http.StatusServiceUnavailable {
				t.Error("/readyz is not 503")
			}
			if tc.reason == daemon.ReasonDigestMismatch || tc.reason == daemon.ReasonOriginRejected {
				entries, _ := os.ReadDir(filepath.Join(p.cacheDir, "sha256"))
				if len(entries) != 0 {
					t.Errorf("the cache holds %d files after a failed fetch", len(entries))
				}
			}
			msg, _ := os.ReadFile(p.terminationLog)
			if !strings.Contains(string(msg), tc.reason) {
				t.Errorf("termination message %q does not say %s", msg, tc.reason)
			}
		})
	}
}

// TestOverloadGets429AndNothingHangs: with 2 generation slots and a queue of
// 2, 50 parallel requests each get an answer: 200, or 429 with Retry-After.
func TestOverloadGets429AndNothingHangs(t *testing.T) {
	// A larger vocabulary makes each token cost more; the model never ends
	// by itself, so every request runs to max_tokens.
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0, MinVocab: 4096, NeverEnd: true, ContextLength: 8192})
	cfg := baseConfig(t, "tiny", m, origin(t, m.data, nil).URL+"/tiny.gguf")
	p := start(t, cfg, "--queue-depth", "2")
	p.waitPhase(server.PhaseReady, 60*time.Second)
	before := p.memoryKiB("VmHWM")

	client := &http.Client{Timeout: 2 * time.Minute}
	body := `{"model":"tiny","prompt":"The edge","max_tokens":3000,"temperature":1,"seed":1}`
	const n = 50
	codes := make([]int, n)
	retryAfter := make([]string, n)
	errBodies := make([]string, n)
	var wg sync.WaitGroup
	startGun := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			resp, err := client.Post(p.url+"/v1/completions", "application/json", strings.NewReader(body))
			if err != nil {
				errBodies[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			codes[i], retryAfter[i] = resp.StatusCode, resp.Header.Get("Retry-After")
			if resp.StatusCode != 200 {
				errBodies[i] = string(b)
			}
		}()
	}
	close(startGun)
	wg.Wait()

	count := map[int]int{}
	for i, c := range codes {
		count[c]++
		switch c {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			var e struct {
				Error struct{ Code, Message string }
			}
			if json.Unmarshal([]byte(errBodies[i]), &e) != nil || e.Error.Code != "rate_limit_exceeded" || retryAfter[i] == "" {
				t.Errorf("429 without Retry-After or an OpenAI error body: %q %q", retryAfter[i], errBodies[i])
			}
		default:
			t.Errorf("request %d: status %d %s", i, c, errBodies[i])
		}
	}
	t.Logf("50 parallel requests: %d served, %d refused with 429; VmHWM %d -> %d KiB", count[200], count[429], before, p.memoryKiB("VmHWM"))
	if count[429] == 0 || count[200] < 2 || count[200]+count[429] != n {
		t.Errorf("codes %v; want every request answered, some with 429 and at least the 2 slots served", count)
	}
	if grown := p.memoryKiB("VmHWM") - before; grown > 64<<10 {
		t.Errorf("peak memory grew by %d KiB under overload; want it bounded (< 64 MiB)", grown)
	}
	if q := p.status().Requests; q.Running != 0 || q.Queued != 0 {
		t.Errorf("after the burst: %+v; want nothing running or queued", q)
	}
}

// TestSIGTERMFinishesInFlightRequests: a stream running when SIGTERM comes
// completes within the grace period, new connections are refused, and
// inferd exits 0; past the grace, a running stream is cut and inferd still
// exits 0.
func TestSIGTERMFinishesInFlightRequests(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0, MinVocab: 4096, NeverEnd: true, ContextLength: 8192})
	url := origin(t, m.data, nil).URL + "/tiny.gguf"

	for _, tc := range []struct {
		name      string
		grace     string
		maxTokens int
		wantDone  bool
	}{
		{"within the grace period the stream completes", "60s", 1500, true},
		{"past the grace period the stream is cut", "100ms", 8000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(t, "tiny", m, url)
			p := start(t, cfg, "--shutdown-grace", tc.grace)
			p.waitPhase(server.PhaseReady, 60*time.Second)
			resp, err := http.Post(p.url+"/v1/completions", "application/json", strings.NewReader(
				fmt.Sprintf(`{"model":"tiny","prompt":"The edge","max_tokens":%d,"temperature":1,"stream":true}`, tc.maxTokens)))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			if !sc.Scan() {
				t.Fatal("no first event")
			}
			exit := make(chan int, 1)
			var msg string
			go func() {
				code, m := p.terminate(90 * time.Second)
				msg = m
				exit <- code
			}()
			chunks, done := 0, false
			for sc.Scan() {
				line := sc.Text()
				if line == "data: [DONE]" {
					done = true
				} else if strings.HasPrefix(line, "data: ") {
					chunks++
				}
			}
			code := <-exit
			if code != 0 {
				t.Errorf("exit code %d after SIGTERM", code)
			}
			if done != tc.wantDone {
				t.Errorf("stream done=%v after %d chunks; want %v", done, chunks, tc.wantDone)
			}
			if tc.wantDone && chunks < tc.maxTokens/2 {
				t.Errorf("only %d chunks for %d tokens", chunks, tc.maxTokens)
			}
			if !strings.Contains(p.Logs(), "Shutting down") || !strings.HasPrefix(msg, "Ready:") {
				t.Errorf("termination message %q", msg)
			}
			if _, err := http.Get(p.url + "/healthz"); err == nil {
				t.Error("inferd still accepts connections after exiting")
			}
		})
	}
}

// TestAClientThatGoesAwayCancelsItsGeneration: closing the connection of a
// stream stops the generation and frees its slot.
func TestAClientThatGoesAwayCancelsItsGeneration(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0, MinVocab: 4096, NeverEnd: true, ContextLength: 8192})
	cfg := baseConfig(t, "tiny", m, origin(t, m.data, nil).URL+"/tiny.gguf")
	p := start(t, cfg)
	p.waitPhase(server.PhaseReady, 60*time.Second)
	before := p.metric("slmops_inferd_generated_tokens_total")

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/v1/chat/completions", strings.NewReader(
		`{"model":"tiny","messages":[{"role":"user","content":"go"}],"max_tokens":8000,"temperature":1,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for i := 0; i < 3 && sc.Scan(); i++ {
	}
	cancel() // the client goes away mid-stream
	resp.Body.Close()

	deadline := time.Now().Add(30 * time.Second)
	for p.status().Requests.Running != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the generation still runs 30s after its client left")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if made := p.metric("slmops_inferd_generated_tokens_total") - before; made >= 8000 {
		t.Errorf("the generation made all %v tokens; it should have stopped when the client left", made)
	} else {
		t.Logf("the generation stopped after %v of 8000 tokens", made)
	}
}
