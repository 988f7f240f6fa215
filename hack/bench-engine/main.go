// Command bench-engine measures the transformer engine on random-weight
// models of three real shapes (TinyLlama 1.1B, Qwen3-0.6B and SmolLM2-135M),
// generated on the fly (in bin/bench-models, reused while the generator is
// unchanged, never committed), in Q4_0, Q8_0 and Q4_K_M: prompt processing
// (128 tokens) and generation (64 tokens) tokens/s with 2 threads, resident
// memory, the time from loading to the first token, and the ratio of
// generation speed to the machine's memory-bandwidth limit, measured in the
// same run: decoding reads every weight once per token, so bandwidth / model
// bytes is the most tokens/s any engine gets. Generation is measured quiet
// and with another process burning a core, with each cpuPolicy: Auto (the
// default: threads poll while polling pays), Shared (threads never poll) and
// Exclusive (threads always poll first). When LLAMA_BENCH names a
// llama-bench binary, it runs on the same files in the same run, and the
// ratios are printed, with a summary against the goals at the end.
// `make bench-engine` runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/kernels"
	_ "github.com/slmops/slmops/inferd/engine/llama" // registers the llama architectures with engine.Load
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
)

func main() {
	dir := flag.String("models", "bin/bench-models", "where the generated models are kept")
	threads := flag.Int("threads", 2, "engine threads")
	promptN := flag.Int("prompt", 128, "prompt tokens")
	genN := flag.Int("gen", 64, "generated tokens")
	runs := flag.Int("runs", 3, "runs per case (medians are shown)")
	shapeList := flag.String("shapes", "tinyllama-1.1b,qwen3-0.6b,smollm2-135m", "model shapes: "+strings.Join(shapeNames(), ", "))
	types := flag.String("types", "Q4_0,Q8_0,Q4_K_M", "weight types: "+strings.Join(typeNames, ", "))
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the runs here")
	spin := flag.Bool("spin", false, "(internal) burn one core until killed")
	flag.Parse()
	if *spin {
		burn()
	}
	for _, sh := range strings.Split(*shapeList, ",") {
		if _, ok := shapes[sh]; !ok {
			log.Fatalf("shape %q: use one of %s", sh, strings.Join(shapeNames(), ", "))
		}
	}
	for _, name := range strings.Split(*types, ",") {
		if !slices.Contains(typeNames, name) {
			log.Fatalf("type %q: use one of %s", name, strings.Join(typeNames, ", "))
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	lb := os.Getenv("LLAMA_BENCH")
	fmt.Printf("engine benchmark: random weights, %d threads (%d CPUs, GOMAXPROCS %d, %s); prompt %d tokens, generation %d, medians of %d\n",
		*threads, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOARCH, *promptN, *genN, *runs)
	bw := bandwidth(*threads)
	debug.FreeOSMemory() // the probe's buffer must not count as the model's memory
	fmt.Printf("read bandwidth, %d threads: %.1f GB/s (median of 5 passes over 1 GiB)\n", *threads, bw/1e9)
	var summary []row
	for _, sh := range strings.Split(*shapeList, ",") {
		fmt.Printf("\n%s\n%-6s %9s %14s %14s %10s %12s %10s %12s\n", shapes[sh].about, "type", "file", "prompt tok/s", "gen tok/s", "limit", "gen/limit", "RSS", "first token")
		for _, name := range strings.Split(*types, ",") {
			path, size := ensureModel(*dir, specFor(sh, name))
			r := row{shape: sh, typ: name}
			gen := map[engine.CPUPolicy]float64{}
			busy := map[engine.CPUPolicy]float64{}
			var pp, first []float64
			var rss int64
			var gaps [2][2]int64 // Auto's pauses and steal gaps, quiet and with a core taken
			for _, policy := range []engine.CPUPolicy{engine.CPUAuto, engine.CPUShared, engine.CPUExclusive} {
				var tg []float64
				p0, s0 := kernels.AdaptiveGaps()
				for range *runs {
					p, g, f, m := run(path, *threads, *promptN, *genN, policy)
					tg = append(tg, g)
					if policy == engine.CPUAuto {
						pp, first = append(pp, p), append(first, f)
						rss = max(rss, m)
					}
				}
				gen[policy] = median(tg)
				p1, s1 := kernels.AdaptiveGaps()
				// Another process takes one of the cores.
				stop := startSpinner()
				_, g, _, _ := run(path, *threads, 16, *genN, policy)
				stop()
				busy[policy] = g
				if policy == engine.CPUAuto {
					p2, s2 := kernels.AdaptiveGaps()
					gaps = [2][2]int64{{p1 - p0, s1 - s0}, {p2 - p1, s2 - s1}}
				}
			}
			r.pp, r.tg, r.tgBusy = median(pp), gen[engine.CPUAuto], busy[engine.CPUAuto]
			limit := bw / float64(weightBytes(path))
			fmt.Printf("%-6s %7.2f GB %14.1f %14.2f %10.1f %11.0f%% %7d MiB %10.2f s\n", name, float64(size)/1e9,
				r.pp, r.tg, limit, 100*r.tg/limit, rss>>20, median(first))
			for _, policy := range []engine.CPUPolicy{engine.CPUAuto, engine.CPUShared, engine.CPUExclusive} {
				fmt.Printf("       cpuPolicy %-9s gen %7.2f tok/s (%.2fx of Auto); with a core taken %7.2f tok/s (%.2fx of its quiet)\n",
					policy, gen[policy], gen[policy]/gen[engine.CPUAuto], busy[policy], busy[policy]/gen[policy])
			}
			fmt.Printf("       Auto's gaps: quiet %d paused polling, %d put down to steal time; with a core taken %d paused, %d steal\n",
				gaps[0][0], gaps[0][1], gaps[1][0], gaps[1][1])
			if lb != "" {
				lp, lg, err := llamaBench(lb, path, *threads, *promptN, *genN)
				if err != nil {
					fmt.Printf("       llama-bench: %v\n", err)
				} else {
					r.llamaPP, r.llamaTG = lp, lg
					stop := startSpinner()
					_, lgBusy, err := llamaBench(lb, path, *threads, 16, *genN)
					stop()
					if err == nil {
						r.llamaBusy = lgBusy
					}
					fmt.Printf("       llama-bench: prompt %.1f tok/s, gen %.2f tok/s, with a core taken %.2f tok/s (%.2fx of its quiet)\n", lp, lg, lgBusy, lgBusy/lg)
					fmt.Printf("       slmops/llama.cpp: prompt %.2fx, gen %.2fx (Shared %.2fx, Exclusive %.2fx), gen with a core taken %.2fx\n",
						r.pp/lp, r.tg/lg, gen[engine.CPUShared]/lg, gen[engine.CPUExclusive]/lg, r.tgBusy/lgBusy)
				}
			}
			summary = append(summary, r)
		}
	}
	if lb == "" {
		fmt.Println("\nno llama-bench (LLAMA_BENCH is empty), so no ratios against llama.cpp")
		return
	}
	fmt.Printf("\nslmops (cpuPolicy Auto, the default) / llama.cpp, same run; goals: prompt >= 1.0x, gen >= 1.05x, gen with a core taken >= 2x\n")
	fmt.Printf("%-16s %-7s %8s %8s %18s\n", "shape", "type", "prompt", "gen", "gen, core taken")
	for _, r := range summary {
		if r.llamaPP == 0 {
			fmt.Printf("%-16s %-7s %s\n", r.shape, r.typ, "llama-bench failed")
			continue
		}
		fmt.Printf("%-16s %-7s %7.2fx%s %7.2fx%s %17.2fx%s\n", r.shape, r.typ,
			r.pp/r.llamaPP, mark(r.pp/r.llamaPP >= 1.0), r.tg/r.llamaTG, mark(r.tg/r.llamaTG >= 1.05), r.tgBusy/r.llamaBusy, mark(r.tgBusy/r.llamaBusy >= 2))
	}
	fmt.Println("(* below the goal)")
}

// row is one shape and type's figures, for the summary.
type row struct {
	shape, typ                  string
	pp, tg, tgBusy              float64
	llamaPP, llamaTG, llamaBusy float64
}

func mark(met bool) string {
	if met {
		return " "
	}
	return "*"
}

// startSpinner runs this program again as a process that burns one core,
// and returns the function that stops it.
func startSpinner() func() {
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(self, "-spin")
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

func burn() {
	runtime.GOMAXPROCS(1)
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			fmt.Println(x)
		}
	}
}

// shapes are the benchmark models' shapes by name.
var shapes = map[string]struct {
	about string
	spec  func(gguf.TensorType) llamatest.RandomSpec
}{
	"tinyllama-1.1b": {"TinyLlama 1.1B shape (llama, 22 layers, 2048 wide, 32 heads, 4 KV heads, 32,000 tokens)", llamatest.TinyLlama},
	"qwen3-0.6b":     {"Qwen3-0.6B shape (qwen3, 28 layers, 1024 wide, 16 heads of 128, 8 KV heads, 151,936 tokens, tied)", llamatest.Qwen3_06B},
	"smollm2-135m":   {"SmolLM2-135M shape (llama, 30 layers, 576 wide, 9 heads, 3 KV heads, 49,152 tokens, tied)", llamatest.SmolLM2_135M},
}

func shapeNames() []string {
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// typeNames are the weight types the benchmark writes: Q4_K_M is
// llama-quantize's mix (Q4_K with Q6_K in some tensors and the fallback
// types where rows are not whole K-quant blocks).
var typeNames = []string{"Q4_0", "Q8_0", "Q4_K_M", "Q6_K", "F16"}

func specFor(shape, name string) llamatest.RandomSpec {
	if name == "Q4_K_M" {
		s := shapes[shape].spec(gguf.Q4_K)
		s.Mix = "Q4_K_M"
		return s
	}
	for _, t := range []gguf.TensorType{gguf.Q8_0, gguf.Q4_0, gguf.Q6_K, gguf.F16} {
		if t.String() == name {
			return shapes[shape].spec(t)
		}
	}
	panic("unknown type " + name)
}

// ensureModel writes the model unless a file from the same generator is there.
func ensureModel(dir string, spec llamatest.RandomSpec) (string, int64) {
	name := spec.Type.String()
	if spec.Mix != "" {
		name = spec.Mix
	}
	path := filepath.Join(dir, spec.Name+"-"+name+".gguf")
	if st, err := os.Stat(path); err == nil {
		if m, err := gguf.Open(path); err == nil {
			m.Close()
			return path, st.Size()
		}
	}
	start := time.Now()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		log.Fatal(err)
	}
	if err := llamatest.WriteRandom(f, spec); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		log.Fatal(err)
	}
	st, _ := os.Stat(path)
	fmt.Printf("(generated %s, %.2f GB, in %.0f s)\n", path, float64(st.Size())/1e9, time.Since(start).Seconds())
	return path, st.Size()
}

// weightBytes is what one decoded token reads: every matrix but the token
// embeddings (of which it reads one row).
func weightBytes(path string) int64 {
	m, err := gguf.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	var n int64
	for _, t := range m.Tensors {
		if t.Name != "token_embd.weight" {
			n += int64(t.Size)
		}
	}
	return n
}

// run loads the model, reads a prompt and generates, and returns prompt and
// generation tokens/s, seconds from load to first token, and peak RSS.
func run(path string, threads, promptN, genN int, policy engine.CPUPolicy) (float64, float64, float64, int64) {
	start := time.Now()
	e, err := engine.Load(path, engine.Expect{}, engine.Options{Threads: threads, CPUPolicy: policy})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	seq, _ := e.NewSequence()
	defer seq.Close()
	prompt := make([]int32, promptN)
	prompt[0] = 1
	for i := 1; i < promptN; i++ {
		prompt[i] = int32(300 + (i*7919)%31000)
	}
	t0 := time.Now()
	logits, err := seq.Forward(context.Background(), prompt)
	if err != nil {
		log.Fatal(err)
	}
	pp := float64(promptN) / time.Since(t0).Seconds()
	sampler := engine.NewSampler(0, 1, nil)
	tok := sampler.Sample(logits)
	first := time.Since(start).Seconds()
	t1 := time.Now()
	for range genN {
		if logits, err = seq.Forward(context.Background(), []int32{tok}); err != nil {
			log.Fatal(err)
		}
		tok = sampler.Sample(logits)
	}
	tg := float64(genN) / time.Since(t1).Seconds()
	return pp, tg, first, vmRSS()
}

// vmRSS is the resident memory now: the mapped model pages the forward
// pass touched, the KV cache and the heap.
func vmRSS() int64 {
	raw, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n << 10
		}
	}
	return 0
}

// bandwidth measures how fast threads goroutines read a 1 GiB buffer, in
// bytes per second.
func bandwidth(threads int) float64 {
	buf := make([]uint64, (1<<30)/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	var results []float64
	var sink uint64
	for range 5 {
		var wg sync.WaitGroup
		sums := make([]uint64, threads*8)
		start := time.Now()
		part := len(buf) / threads
		for w := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sums[w*8] = sumWords(buf[w*part : (w+1)*part])
			}()
		}
		wg.Wait()
		results = append(results, float64(len(buf)*8)/time.Since(start).Seconds())
		for _, s := range sums {
			sink += s
		}
	}
	if sink == 42 {
		fmt.Println()
	}
	buf = nil
	return median(results)
}

// sumWords reads every word; eight independent sums keep the loads from
// waiting on one another.
func sumWords(b []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for i := 0; i+8 <= len(b); i += 8 {
		w := (*[8]uint64)(unsafe.Pointer(&b[i]))
		s0 += w[0]
		s1 += w[1]
		s2 += w[2]
		s3 += w[3]
		s4 += w[4]
		s5 += w[5]
		s6 += w[6]
		s7 += w[7]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// llamaBench runs llama.cpp's llama-bench on the same file.
func llamaBench(bin, path string, threads, promptN, genN int) (float64, float64, error) {
	out, err := exec.Command(bin, "-m", path, "-t", strconv.Itoa(threads), "-p", strconv.Itoa(promptN), "-n", strconv.Itoa(genN), "-o", "json").Output()
	if err != nil {
		return 0, 0, err
	}
	var rows []struct {
		NPrompt int     `json:"n_prompt"`
		NGen    int     `json:"n_gen"`
		AvgTS   float64 `json:"avg_ts"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return 0, 0, fmt.Errorf("read llama-bench output: %w", err)
	}
	var pp, tg float64
	for _, r := range rows {
		if r.NPrompt > 0 {
			pp = r.AvgTS
		} else if r.NGen > 0 {
			tg = r.AvgTS
		}
	}
	return pp, tg, nil
}
