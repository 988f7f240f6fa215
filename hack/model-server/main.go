// Command model-server generates small random-weight llama-architecture GGUF
// models and serves them over HTTP on this machine, the way a model store
// would. Each of its -revisions is a pair of files, a Q4_0 one for ARM boards
// and a Q8_0 one for x86 mini PCs, as the sample SLMModel ships them, and
// -patch-dir gets one merge patch per revision that points the sample
// SLMModel at that pair (sources, digests, sizes, a self-test these weights
// pass). The demo uses it as the origin of its real inferd serving pods;
// -config writes an INFERD_CONFIG for the first file, to try inferd by hand:
//
//	go run ./hack/model-server -config /tmp/inferd.json &
//	INFERD_CONFIG=$(cat /tmp/inferd.json) go run ./cmd/inferd --listen 127.0.0.1:8080 --termination-log ""
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
)

// file is one served model file.
type file struct {
	path, quantization, digest string
	data                       []byte
}

// The self-test that every generated model passes: random weights write
// no words, so it checks the speed and that tokens come out. 128 tokens
// take long enough to span many CFS periods of a half-core node, so that
// the figures show the node's CPU bound, not a burst within one period.
const (
	selfTestPrompt    = "hello edge"
	selfTestMaxTokens = 128
	selfTestMinTPS    = 5
	selfTestMaxTTFT   = 2 * time.Second
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to serve the models on")
	name := flag.String("name", "tinyllama-chat", "the SLMModel, and the model id inferd serves")
	revisions := flag.Int("revisions", 2, "how many revisions (pairs of Q4_0 and Q8_0 files) to serve")
	layers := flag.Int("layers", 8, "transformer layers of each model: more layers, slower decoding")
	patchDir := flag.String("patch-dir", "", "write revision-<n>.yaml, a merge patch of the SLMModel per revision, here")
	configPath := flag.String("config", "", "write the INFERD_CONFIG JSON for the first file here")
	cacheDir := flag.String("cache-dir", filepath.Join(os.TempDir(), "slmops-model-cache"), "inferd's cache directory in the config")
	flag.Parse()
	if *revisions < 1 || *layers < 1 {
		log.Fatal("-revisions and -layers must be at least 1")
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	files := map[string]file{}
	for rev := 1; rev <= *revisions; rev++ {
		var pair []file
		for _, typ := range []gguf.TensorType{gguf.Q4_0, gguf.Q8_0} {
			f, err := generate(*name, rev, *layers, typ)
			if err != nil {
				log.Fatal(err)
			}
			files[f.path] = f
			pair = append(pair, f)
			fmt.Printf("serving %s%s (%d bytes, %s, %s)\n", base, f.path, len(f.data), f.quantization, f.digest)
		}
		if *patchDir != "" {
			if err := writePatch(*patchDir, *name, rev, base, pair[0], pair[1]); err != nil {
				log.Fatal(err)
			}
		}
	}
	if *configPath != "" {
		if err := writeConfig(*configPath, *cacheDir, *name, base, files["/r1/"+*name+"-q4_0.gguf"]); err != nil {
			log.Fatal(err)
		}
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, filepath.Base(f.path), time.Unix(0, 0), bytes.NewReader(f.data))
	}), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// generate writes revision rev of the model in typ: the revision seeds the
// weights, so each revision is a new file with a new digest.
func generate(name string, rev, layers int, typ gguf.TensorType) (file, error) {
	var buf bytes.Buffer
	if err := llamatest.WriteRandom(&buf, llamatest.Edge(name, layers, typ, uint64(rev))); err != nil {
		return file{}, fmt.Errorf("generate revision %d in %s: %w", rev, typ, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return file{
		path:         fmt.Sprintf("/r%d/%s-%s.gguf", rev, name, strings.ToLower(typ.String())),
		quantization: typ.String(),
		digest:       "sha256:" + hex.EncodeToString(sum[:]),
		data:         buf.Bytes(),
	}, nil
}

// writePatch writes the merge patch that points the SLMModel at a revision:
// the ARM file as its default artifact, the x86 one as its amd64 variant.
// JSON is YAML, so kubectl patch --patch-file and kustomize take it as is.
func writePatch(dir, name string, rev int, base string, arm, x86 file) error {
	source := func(f file) map[string]any {
		return map[string]any{"http": map[string]any{"url": base + f.path, "allowInsecureHTTP": true}}
	}
	patch := map[string]any{
		"apiVersion": "slmops.dev/v1alpha1",
		"kind":       "SLMModel",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"source": source(arm), "digest": arm.digest, "quantization": arm.quantization, "sizeBytes": len(arm.data),
			"runtime": map[string]any{"contextLength": 256},
			"selfTest": map[string]any{
				"prompts":             []any{map[string]any{"prompt": selfTestPrompt, "maxTokens": selfTestMaxTokens}},
				"minTokensPerSecond":  selfTestMinTPS,
				"maxTimeToFirstToken": selfTestMaxTTFT.String(),
				"timeout":             "3m",
			},
			"variants": []any{map[string]any{
				"name":         "amd64-q8",
				"nodeSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/arch": "amd64"}},
				"source":       source(x86), "digest": x86.digest, "quantization": x86.quantization, "sizeBytes": len(x86.data),
			}},
		},
	}
	data, err := json.MarshalIndent(patch, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, fmt.Sprintf("revision-%d.yaml", rev)), append(data, '\n'), 0o600)
}

// writeConfig writes an INFERD_CONFIG that runs f.
func writeConfig(path, cacheDir, name, base string, f file) error {
	cfg := config.Config{
		Model: config.Model{
			Name: name, URL: base + f.path, AllowInsecureHTTP: true, Digest: f.digest, Quantization: f.quantization,
			Architecture: "llama", SizeBytes: int64(len(f.data)),
		},
		Runtime: config.Runtime{ContextLength: 256, MaxConcurrentRequests: 2},
		SelfTest: &config.SelfTest{
			Prompts:            []config.Prompt{{Prompt: selfTestPrompt, MaxTokens: selfTestMaxTokens}},
			MinTokensPerSecond: selfTestMinTPS, MaxTimeToFirstToken: selfTestMaxTTFT,
		},
		Port: 8080, CacheDir: cacheDir,
	}
	encoded, err := cfg.Encode()
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(encoded), 0o600)
}
