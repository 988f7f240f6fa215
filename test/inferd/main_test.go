// Package inferd tests the inferd binary as a process, the way a node runs
// it: configured by INFERD_CONFIG, fetching a generated GGUF model from a
// real local HTTP server into a real cache directory, answering real HTTP
// clients (the official OpenAI Go client among them), and stopping on
// SIGTERM.
//
// What it owns: inferd's behaviour as a process. What it may not touch:
// inferd's packages from the inside; it talks to the binary over HTTP,
// files and signals only.
package inferd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/server"
)

var inferdBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "slmops-inferd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	inferdBin = filepath.Join(dir, "inferd")
	if out, err := exec.Command("go", "build", "-o", inferdBin, "github.com/slmops/slmops/cmd/inferd").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build inferd: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// modelFile is a generated model: its bytes and digest.
type modelFile struct {
	data   []byte
	digest string
}

func generate(t *testing.T, o bigram.BuildOptions) modelFile {
	t.Helper()
	var buf bytes.Buffer
	if err := bigram.Write(&buf, o); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return modelFile{data: buf.Bytes(), digest: "sha256:" + hex.EncodeToString(sum[:])}
}

// origin serves one model file; with a gate it holds every request until
// the gate is closed.
func origin(t *testing.T, data []byte, gate chan struct{}) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		http.ServeContent(w, r, "model.gguf", time.Unix(0, 0), bytes.NewReader(data))
	}))
	t.Cleanup(s.Close)
	return s
}

// inferd is a running inferd process.
type inferd struct {
	t              *testing.T
	cmd            *exec.Cmd
	url            string
	cacheDir       string
	terminationLog string
	mu             sync.Mutex
	logs           bytes.Buffer
	exited         chan struct{}
	exitErr        error
}

func baseConfig(t *testing.T, name string, m modelFile, url string) config.Config {
	return config.Config{
		Model: config.Model{
			Name: name, URL: url, AllowInsecureHTTP: true, Digest: m.digest,
			Quantization: "Q8_0", Architecture: bigram.Architecture, SizeBytes: int64(len(m.data)),
		},
		Runtime:  config.Runtime{ContextLength: 8192, MaxConcurrentRequests: 2},
		Port:     8080,
		CacheDir: t.TempDir(),
	}
}

// start runs inferd with cfg and waits until it serves its probes.
func start(t *testing.T, cfg config.Config, flags ...string) *inferd {
	t.Helper()
	return startOn(t, "edge-test-0001", cfg, flags...)
}

// startOn is start on a named node.
func startOn(t *testing.T, node string, cfg config.Config, flags ...string) *inferd {
	t.Helper()
	encoded, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	p := &inferd{t: t, cacheDir: cfg.CacheDir, terminationLog: filepath.Join(t.TempDir(), "termination-log"), exited: make(chan struct{})}
	args := append([]string{"--listen", "127.0.0.1:0", "--termination-log", p.terminationLog, "--fetch-retry-backoff", "50ms", "--v", "1"}, flags...)
	p.cmd = exec.Command(inferdBin, args...)
	p.cmd.Env = append(os.Environ(), config.EnvConfig+"="+encoded, config.EnvNodeName+"="+node)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg     string `json:"msg"`
				Address string `json:"address"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "Serving probes" {
				addr <- rec.Address
			}
		}
	}()
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("inferd log:\n%s", p.Logs())
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.exited:
		t.Fatalf("inferd exited before serving: %v\n%s", p.exitErr, p.Logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("inferd did not serve its probes within 20s\n%s", p.Logs())
	}
	return p
}

// Logs is what inferd logged so far.
func (p *inferd) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *inferd) status() server.Status {
	p.t.Helper()
	resp, err := http.Get(p.url + "/status")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st server.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		p.t.Fatal(err)
	}
	return st
}

func (p *inferd) readyz() int {
	resp, err := http.Get(p.url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitPhase waits until /status shows phase.
func (p *inferd) waitPhase(phase server.Phase, within time.Duration) server.Status {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := p.status()
		if st.Phase == phase {
			return st
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("inferd is %s (%s: %s), not %s, after %s", st.Phase, st.Reason, st.Message, phase, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// terminate sends SIGTERM and waits for the exit; it returns the exit code
// and the termination message.
func (p *inferd) terminate(within time.Duration) (int, string) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(within):
		p.t.Fatalf("inferd did not exit within %s of SIGTERM", within)
	}
	msg, _ := os.ReadFile(p.terminationLog)
	return p.cmd.ProcessState.ExitCode(), string(msg)
}

// metric returns the value of an unlabelled metric from /metrics.
func (p *inferd) metric(name string) float64 {
	p.t.Helper()
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	p.t.Fatalf("metric %s not found", name)
	return 0
}

// memoryKiB reads a /proc/<pid>/status field (VmRSS, VmHWM).
func (p *inferd) memoryKiB(field string) int64 {
	p.t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		p.t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	p.t.Fatalf("%s not in /proc status", field)
	return 0
}

func generateDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
