// Command bench-inferd measures inferd's own costs against anchors run in
// the same process: a verified, fsynced, resumable download against a plain
// HTTP copy of the same bytes, and tokens/s through the HTTP API (plain and
// streamed) against the engine called directly. `make bench-inferd` runs it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/fetch"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/server"
)

func main() {
	sizeMiB := flag.Int("size-mib", 256, "model file size for the download benchmark")
	tokens := flag.Int("tokens", 2000, "tokens per generation in the serving benchmark")
	runs := flag.Int("runs", 3, "runs per case (the median is shown)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "bench-inferd-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fmt.Printf("inferd benchmarks (%d cores, %s)\n", runtime.NumCPU(), runtime.GOARCH)
	benchFetch(dir, *sizeMiB, *runs)
	benchServe(dir, *tokens, *runs)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func benchFetch(dir string, sizeMiB, runs int) {
	data := make([]byte, sizeMiB<<20)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	var cut atomic.Bool
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cut.Load() && r.Header.Get("Range") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			_, _ = w.Write(data[:len(data)/2])
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, "m.gguf", time.Unix(0, 0), bytes.NewReader(data))
	}))
	defer origin.Close()
	mib := float64(sizeMiB)

	var plain, verified, resumed []float64
	var resumedBytes int64
	for i := range runs {
		// Anchor: the same bytes over the same HTTP, copied to a file.
		start := time.Now()
		resp, err := http.Get(origin.URL)
		if err != nil {
			log.Fatal(err)
		}
		f, _ := os.Create(filepath.Join(dir, "plain"))
		_, _ = io.Copy(f, resp.Body)
		resp.Body.Close()
		f.Close()
		plain = append(plain, time.Since(start).Seconds())

		fe := &fetch.Fetcher{CacheDir: filepath.Join(dir, fmt.Sprint("cache", i)), Backoff: time.Millisecond}
		start = time.Now()
		if _, err := fe.Fetch(context.Background(), origin.URL, digest, int64(len(data))); err != nil {
			log.Fatal(err)
		}
		verified = append(verified, time.Since(start).Seconds())
		_ = os.RemoveAll(fe.CacheDir)

		cut.Store(true)
		fe = &fetch.Fetcher{CacheDir: filepath.Join(dir, fmt.Sprint("resume", i)), Backoff: time.Millisecond}
		start = time.Now()
		res, err := fe.Fetch(context.Background(), origin.URL, digest, int64(len(data)))
		if err != nil {
			log.Fatal(err)
		}
		resumed = append(resumed, time.Since(start).Seconds())
		resumedBytes = res.Downloaded
		cut.Store(false)
		_ = os.RemoveAll(fe.CacheDir)
	}
	p, v, r := median(plain), median(verified), median(resumed)
	fmt.Printf("\ndownload of a %d MiB model from a local HTTP server (median of %d)\n", sizeMiB, runs)
	fmt.Printf("  plain HTTP GET copied to a file                 %6.2f s  %7.0f MiB/s   (anchor)\n", p, mib/p)
	fmt.Printf("  Fetcher: sha256 while streaming, fsync, rename  %6.2f s  %7.0f MiB/s   ratio %.2fx\n", v, mib/v, v/p)
	fmt.Printf("  Fetcher, connection cut at 50%%, Range resume    %6.2f s  %7.0f MiB/s   ratio %.2fx, %.2f of the file sent twice\n",
		r, mib/r, r/p, float64(resumedBytes)/float64(len(data))-1)
}

func benchServe(dir string, tokens, runs int) {
	path := filepath.Join(dir, "m.gguf")
	f, _ := os.Create(path)
	if err := bigram.Write(f, bigram.BuildOptions{Type: gguf.Q8_0, MinVocab: 4096, NeverEnd: true, ContextLength: uint32(tokens + 64)}); err != nil {
		log.Fatal(err)
	}
	f.Close()
	e, err := engine.Load(path, engine.Expect{}, engine.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	s := server.New(server.Options{ModelName: "m", Concurrency: 2, QueueDepth: 4, Log: logr.Discard()})
	s.SetEngine(e)
	s.SetReady()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	params := engine.Params{MaxTokens: tokens, Temperature: 1, TopP: 0.95}
	body := fmt.Sprintf(`{"model":"m","prompt":"The edge","max_tokens":%d,"temperature":1,"top_p":0.95`, tokens)

	direct := func() float64 {
		start := time.Now()
		res, err := engine.Generate(context.Background(), e, "The edge", params, nil)
		if err != nil || res.CompletionTokens != tokens {
			log.Fatalf("direct: %v %d", err, res.CompletionTokens)
		}
		return float64(tokens) / time.Since(start).Seconds()
	}
	viaHTTP := func(stream bool) float64 {
		b := body + "}"
		if stream {
			b = body + `,"stream":true}`
		}
		start := time.Now()
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(b))
		if err != nil {
			log.Fatal(err)
		}
		n := 0
		if stream {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: {") {
					n++
				}
			}
			n-- // the final chunk carries the finish reason, no token
		} else {
			var out struct {
				Usage struct {
					CompletionTokens int `json:"completion_tokens"`
				}
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			n = out.Usage.CompletionTokens
		}
		resp.Body.Close()
		if n != tokens {
			log.Fatalf("http stream=%v: %d tokens", stream, n)
		}
		return float64(tokens) / time.Since(start).Seconds()
	}
	parallel := func(k int) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		for range k {
			wg.Add(1)
			go func() { defer wg.Done(); viaHTTP(true) }()
		}
		wg.Wait()
		return float64(k*tokens) / time.Since(start).Seconds()
	}
	var d, h, st, p2 []float64
	for range runs {
		d = append(d, direct())
		h = append(h, viaHTTP(false))
		st = append(st, viaHTTP(true))
		p2 = append(p2, parallel(2))
	}
	md := median(d)
	fmt.Printf("\nserving: %d tokens per request, bigram Q8_0 model with a 4096-token vocabulary (median of %d)\n", tokens, runs)
	fmt.Printf("  engine.Generate called directly                 %9.0f tokens/s   (anchor)\n", md)
	fmt.Printf("  POST /v1/completions                            %9.0f tokens/s   ratio %.2fx\n", median(h), median(h)/md)
	fmt.Printf("  POST /v1/completions, stream: one event a token %9.0f tokens/s   ratio %.2fx\n", median(st), median(st)/md)
	fmt.Printf("  two streams at once (2 slots)                   %9.0f tokens/s   ratio %.2fx\n", median(p2), median(p2)/md)
	fmt.Println("  (the bigram test architecture costs microseconds a token, so these ratios are the serving overhead at its most visible)")
}
