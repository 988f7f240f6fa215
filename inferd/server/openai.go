package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/slmops/slmops/inferd/engine"
)

// Request limits beyond the model's own.
const (
	maxStops      = 4
	maxStopLength = 256
	maxMessages   = 256
)

// sampling are the generation parameters both endpoints share.
type sampling struct {
	Model               string          `json:"model"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int            `json:"top_k"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	Stop                json.RawMessage `json:"stop"`
	Seed                *int64          `json:"seed"`
	Logprobs            json.RawMessage `json:"logprobs"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type completionRequest struct {
	sampling
	Prompt json.RawMessage `json:"prompt"`
	Echo   bool            `json:"echo"`
	Suffix string          `json:"suffix"`
	BestOf *int            `json:"best_of"`
}

type chatRequest struct {
	sampling
	Messages       []chatMessage   `json:"messages"`
	Tools          json.RawMessage `json:"tools"`
	Functions      json.RawMessage `json:"functions"`
	ResponseFormat *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(r engine.Result) *usage {
	return &usage{PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, TotalTokens: r.PromptTokens + r.CompletionTokens}
}

// decode reads a JSON body, answering what is wrong with it precisely.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: "the request body is empty; send a JSON object"}
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			field := strings.TrimPrefix(typeErr.Field, "sampling.")
			return invalid(field, "%s has the wrong type: a JSON %s where %s belongs", field, typeErr.Value, typeErr.Type)
		}
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: "the request body is not valid JSON: " + err.Error()}
	}
	return nil
}

// params validates the shared fields against the model and the server's limits.
func (s *Server) params(e engine.Engine, p *sampling) (engine.Params, error) {
	out := engine.Params{Temperature: 1, TopP: 1, Seed: p.Seed}
	if p.Model == "" {
		return out, invalid("model", "model is required; this inferd serves %q", s.opts.ModelName)
	}
	if p.Model != s.opts.ModelName {
		return out, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
			Message: fmt.Sprintf("the model %q does not exist here; this inferd serves %q", p.Model, s.opts.ModelName)}
	}
	limit := e.Info().ContextLength
	if s.opts.MaxTokens > 0 {
		limit = min(limit, s.opts.MaxTokens)
	}
	maxTokens, param := p.MaxTokens, "max_tokens"
	if p.MaxCompletionTokens != nil {
		maxTokens, param = p.MaxCompletionTokens, "max_completion_tokens"
	}
	switch {
	case maxTokens == nil:
		out.MaxTokens = min(s.opts.DefaultMaxTokens, limit)
	case *maxTokens < 1:
		return out, invalid(param, "%s must be at least 1", param)
	case *maxTokens > limit:
		return out, invalid(param, "%s %d is more than this model allows (%d)", param, *maxTokens, limit)
	default:
		out.MaxTokens = *maxTokens
	}
	if t := p.Temperature; t != nil {
		if *t < 0 || *t > 2 {
			return out, invalid("temperature", "temperature must be between 0 and 2, not %g", *t)
		}
		out.Temperature = float32(*t)
	}
	if tp := p.TopP; tp != nil {
		if *tp < 0 || *tp > 1 {
			return out, invalid("top_p", "top_p must be between 0 and 1, not %g", *tp)
		}
		out.TopP = float32(*tp)
		if *tp == 0 {
			out.Temperature = 0 // only the most likely token
		}
	}
	if k := p.TopK; k != nil {
		if *k < 0 {
			return out, invalid("top_k", "top_k must be 0 (off) or positive, not %d", *k)
		}
		out.TopK = *k
	}
	if p.N != nil && *p.N != 1 {
		return out, invalid("n", "n must be 1: inferd generates one choice per request")
	}
	if l := bytes.TrimSpace(p.Logprobs); len(l) > 0 && !bytes.Equal(l, []byte("null")) && !bytes.Equal(l, []byte("false")) {
		return out, invalid("logprobs", "logprobs are not supported")
	}
	if p.StreamOptions != nil && !p.Stream {
		return out, invalid("stream_options", "stream_options is only allowed with stream: true")
	}
	stops, err := parseStop(p.Stop)
	if err != nil {
		return out, err
	}
	out.Stop = stops
	return out, nil
}

func parseStop(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var one string
	var many []string
	if err := json.Unmarshal(raw, &one); err == nil {
		many = []string{one}
	} else if err := json.Unmarshal(raw, &many); err != nil {
		return nil, invalid("stop", "stop must be a string or an array of strings")
	}
	if len(many) > maxStops {
		return nil, invalid("stop", "stop has %d sequences; at most %d are allowed", len(many), maxStops)
	}
	for _, s := range many {
		if s == "" || len(s) > maxStopLength {
			return nil, invalid("stop", "each stop sequence must be 1 to %d bytes", maxStopLength)
		}
	}
	return many, nil
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{s.modelObject()}})
	return nil
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) error {
	if id := r.PathValue("id"); id != s.opts.ModelName {
		return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
			Message: fmt.Sprintf("the model %q does not exist here; this inferd serves %q", id, s.opts.ModelName)}
	}
	writeJSON(w, http.StatusOK, s.modelObject())
	return nil
}

func (s *Server) modelObject() map[string]any {
	st := s.Status()
	return map[string]any{"id": s.opts.ModelName, "object": "model", "created": st.StartedAt.Unix(), "owned_by": "slmops", "ready": st.Ready}
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) error {
	e, err := s.readyEngine()
	if err != nil {
		return err
	}
	var req completionRequest
	if err := decode(w, r, s.opts.MaxRequestBytes, &req); err != nil {
		return err
	}
	params, err := s.params(e, &req.sampling)
	if err != nil {
		return err
	}
	switch {
	case req.Echo:
		return invalid("echo", "echo is not supported")
	case req.Suffix != "":
		return invalid("suffix", "suffix is not supported")
	case req.BestOf != nil && *req.BestOf != 1:
		return invalid("best_of", "best_of must be 1")
	}
	prompt, err := parsePrompt(req.Prompt)
	if err != nil {
		return err
	}
	g := &generation{s: s, w: w, r: r, id: "cmpl-" + randomID(), chat: false, stream: req.Stream,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage}
	return g.run(func(emit func(string) error) (engine.Result, error) {
		return engine.Generate(g.r.Context(), e, prompt, params, emit)
	})
}

func parsePrompt(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", invalid("prompt", "prompt is required")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return one, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err == nil {
		if len(many) != 1 {
			return "", invalid("prompt", "prompt must be one string (an array of %d prompts is not supported)", len(many))
		}
		return many[0], nil
	}
	return "", invalid("prompt", "prompt must be a string (token arrays are not supported)")
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) error {
	e, err := s.readyEngine()
	if err != nil {
		return err
	}
	var req chatRequest
	if err := decode(w, r, s.opts.MaxRequestBytes, &req); err != nil {
		return err
	}
	params, err := s.params(e, &req.sampling)
	if err != nil {
		return err
	}
	if isSet(req.Tools) || isSet(req.Functions) {
		return invalid("tools", "tools and functions are not supported")
	}
	if rf := req.ResponseFormat; rf != nil && rf.Type != "" && rf.Type != "text" {
		return invalid("response_format", "response_format %q is not supported (only text)", rf.Type)
	}
	if len(req.Messages) == 0 || len(req.Messages) > maxMessages {
		return invalid("messages", "messages must hold 1 to %d messages", maxMessages)
	}
	msgs := make([]engine.Message, 0, len(req.Messages))
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant":
		default:
			return invalid(fmt.Sprintf("messages[%d].role", i), "role %q is not supported (system, developer, user, assistant)", m.Role)
		}
		text, err := messageText(m.Content)
		if err != nil {
			return invalid(fmt.Sprintf("messages[%d].content", i), "%v", err)
		}
		role := m.Role
		if role == "developer" {
			role = "system"
		}
		msgs = append(msgs, engine.Message{Role: role, Content: text})
	}
	tokens, err := e.EncodeChat(msgs)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	g := &generation{s: s, w: w, r: r, id: "chatcmpl-" + randomID(), chat: true, stream: req.Stream,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage}
	return g.run(func(emit func(string) error) (engine.Result, error) {
		return engine.GenerateTokens(g.r.Context(), e, tokens, params, emit)
	})
}

func isSet(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null")) && !bytes.Equal(raw, []byte("[]"))
}

// messageText is a message's content: a string, or text parts.
func messageText(raw json.RawMessage) (string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return one, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or an array of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part of type %q is not supported (only text)", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// generation is one request's run: slot, generate, answer or stream.
type generation struct {
	s            *Server
	w            http.ResponseWriter
	r            *http.Request
	id           string
	chat         bool
	stream       bool
	includeUsage bool
	created      int64
	started      bool
}

func (g *generation) run(generate func(emit func(string) error) (engine.Result, error)) error {
	release, err := g.s.lim.acquire(g.r.Context())
	if errors.Is(err, errOverloaded) {
		ae := toAPIError(err)
		ae.retryAfter = g.s.lim.retryAfter()
		return ae
	}
	if err != nil {
		return err
	}
	defer release()
	g.created = time.Now().Unix()

	var emit func(string) error
	if g.stream {
		emit = g.emit
	}
	res, err := generate(emit)
	m := g.s.metrics
	m.PromptTokens.Add(float64(res.PromptTokens))
	m.GeneratedTokens.Add(float64(res.CompletionTokens))
	if res.CompletionTokens > 0 {
		m.TimeToFirstToken.Observe(res.TimeToFirstToken.Seconds())
	}
	if res.CompletionTokens > 1 {
		m.TimePerToken.Observe((res.Duration - res.TimeToFirstToken).Seconds() / float64(res.CompletionTokens-1))
	}
	if err != nil {
		if g.r.Context().Err() != nil {
			g.s.opts.Log.V(1).Info("Generation canceled", "id", g.id, "completionTokens", res.CompletionTokens)
		}
		if g.started { // the stream is open: say it there and end it
			ae := toAPIError(err)
			_ = g.event(map[string]any{"error": ae}) // the client may be gone: nothing to tell then
			return nil
		}
		return err
	}
	if !g.stream {
		writeJSON(g.w, http.StatusOK, g.final(res))
		return nil
	}
	if !g.started {
		g.start()
	}
	// The generation is over: a client that went away misses the end, as it
	// misses [DONE].
	_ = g.event(g.chunk("", res.FinishReason))
	if g.includeUsage {
		_ = g.event(map[string]any{"id": g.id, "object": g.chunkObject(), "created": g.created, "model": g.s.opts.ModelName, "choices": []any{}, "usage": usageOf(res)})
	}
	_, _ = io.WriteString(g.w, "data: [DONE]\n\n")
	_ = http.NewResponseController(g.w).Flush()
	return nil
}

func (g *generation) final(res engine.Result) map[string]any {
	choice := map[string]any{"index": 0, "logprobs": nil, "finish_reason": res.FinishReason}
	object := "text_completion"
	if g.chat {
		choice["message"] = map[string]any{"role": "assistant", "content": res.Text}
		object = "chat.completion"
	} else {
		choice["text"] = res.Text
	}
	return map[string]any{"id": g.id, "object": object, "created": g.created, "model": g.s.opts.ModelName, "choices": []any{choice}, "usage": usageOf(res)}
}

func (g *generation) chunkObject() string {
	if g.chat {
		return "chat.completion.chunk"
	}
	return "text_completion"
}

func (g *generation) chunk(text, finish string) map[string]any {
	choice := map[string]any{"index": 0, "logprobs": nil}
	if finish != "" {
		choice["finish_reason"] = finish
	} else {
		choice["finish_reason"] = nil
	}
	if g.chat {
		delta := map[string]any{}
		if text != "" {
			delta["content"] = text
		}
		choice["delta"] = delta
	} else {
		choice["text"] = text
	}
	return map[string]any{"id": g.id, "object": g.chunkObject(), "created": g.created, "model": g.s.opts.ModelName, "choices": []any{choice}}
}

// start opens the event stream; headers go out only when the first token
// does, so an error before it is still a plain 4xx.
func (g *generation) start() {
	g.started = true
	h := g.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	g.w.WriteHeader(http.StatusOK)
	if g.chat {
		c := g.chunk("", "")
		c["choices"].([]any)[0].(map[string]any)["delta"] = map[string]any{"role": "assistant", "content": ""}
		// A failed write fails the emit that follows, which ends the generation.
		_ = g.event(c)
	}
}

func (g *generation) emit(text string) error {
	if !g.started {
		g.start()
	}
	return g.event(g.chunk(text, ""))
}

func (g *generation) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(g.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return http.NewResponseController(g.w).Flush()
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
