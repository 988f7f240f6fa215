package inferd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/server"
)

// TestInferdServesALlamaModel: a llama-architecture GGUF (random weights,
// a SentencePiece vocabulary with ChatML markers) is fetched, loaded by the
// transformer engine, self-tested and answers the OpenAI client.
func TestInferdServesALlamaModel(t *testing.T) {
	var buf bytes.Buffer
	spec := llamatest.RandomSpec{Embd: 256, Layers: 2, Heads: 4, KVHeads: 2, FF: 512, Vocab: 1024, Context: 512, Type: gguf.Q4_0, Seed: 3, ChatMLTokens: true}
	if err := llamatest.WriteRandom(&buf, spec); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	m := modelFile{data: buf.Bytes(), digest: "sha256:" + hex.EncodeToString(sum[:])}
	cfg := baseConfig(t, "tiny-llama", m, origin(t, m.data, nil).URL+"/tiny-llama.gguf")
	cfg.Model.Architecture, cfg.Model.Quantization = "llama", "Q4_0"
	cfg.Runtime.ContextLength = 256
	cfg.SelfTest = &config.SelfTest{Prompts: []config.Prompt{{Prompt: "hello edge", MaxTokens: 8}}, MinTokensPerSecond: 1, Timeout: time.Minute}
	p := start(t, cfg)
	st := p.waitPhase(server.PhaseReady, 60*time.Second)
	if st.Model.Architecture != "llama" || st.Model.ContextLength != 256 || st.Model.VocabSize != 1024 || st.SelfTest.TokensPerSecond <= 0 {
		t.Errorf("status: model %+v, self-test %+v", st.Model, st.SelfTest)
	}

	client := openai.NewClient(option.WithBaseURL(p.url+"/v1/"), option.WithAPIKey("x"), option.WithMaxRetries(0))
	c, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:     "tiny-llama",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("what runs at the edge?")},
		MaxTokens: openai.Int(12),
		Seed:      openai.Int(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	u := c.Usage
	// The ChatML prompt: BOS, 3 x (<|im_start|> role text <|im_end|> "\n") at least.
	if u.PromptTokens < 10 || u.CompletionTokens < 1 || u.CompletionTokens > 12 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage %+v", u)
	}
	if len(c.Choices) != 1 || c.Choices[0].FinishReason == "" {
		t.Errorf("choices %+v", c.Choices)
	}
}
