// Command model-server generates a small GGUF model (the bigram test
// architecture) and serves it over HTTP on this machine, the way a model
// store would, and writes the INFERD_CONFIG that points inferd at it. The
// demo uses it to run inferd on the host; it is also handy to try inferd by
// hand:
//
//	go run ./hack/model-server -config /tmp/inferd.json &
//	INFERD_CONFIG=$(cat /tmp/inferd.json) go run ./cmd/inferd --listen 127.0.0.1:8080 --termination-log ""
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/gguf"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to serve the model on")
	quant := flag.String("quantization", "Q8_0", "F32, F16 or Q8_0")
	name := flag.String("name", "tinyllama-chat", "the model id inferd serves")
	configPath := flag.String("config", "", "write the INFERD_CONFIG JSON here")
	cacheDir := flag.String("cache-dir", filepath.Join(os.TempDir(), "slmops-model-cache"), "inferd's cache directory in the config")
	flag.Parse()

	types := map[string]gguf.TensorType{"F32": gguf.F32, "F16": gguf.F16, "Q8_0": gguf.Q8_0}
	typ, ok := types[*quant]
	if !ok {
		log.Fatalf("quantization %q: use F32, F16 or Q8_0", *quant)
	}
	var buf bytes.Buffer
	if err := bigram.Write(&buf, bigram.BuildOptions{Name: *name, Type: typ}); err != nil {
		log.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	digest := "sha256:" + hex.EncodeToString(sum[:])

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	url := fmt.Sprintf("http://%s/models/%s.gguf", ln.Addr(), *name)
	if *configPath != "" {
		cfg := config.Config{
			Model: config.Model{
				Name: *name, URL: url, AllowInsecureHTTP: true, Digest: digest, Quantization: *quant,
				Architecture: bigram.Architecture, SizeBytes: int64(buf.Len()),
			},
			Runtime: config.Runtime{ContextLength: 2048, MaxConcurrentRequests: 2},
			SelfTest: &config.SelfTest{
				Prompts:            []config.Prompt{{Prompt: "slmops", MaxTokens: 8, ExpectContains: "small language models"}},
				MinTokensPerSecond: 100, MaxTimeToFirstToken: time.Second,
			},
			Port: 8080, CacheDir: *cacheDir,
		}
		encoded, err := cfg.Encode()
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(*configPath, []byte(encoded), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("serving %s (%d bytes, %s, %s)\n", url, buf.Len(), *quant, digest)
	data := buf.Bytes()
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, *name+".gguf", time.Unix(0, 0), bytes.NewReader(data))
	})))
}
