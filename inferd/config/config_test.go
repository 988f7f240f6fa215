package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func valid() Config {
	return Config{
		Model:    Model{Name: "m", URL: "https://x.example.com/m.gguf", Digest: "sha256:" + strings.Repeat("ab", 32), Quantization: "Q4_0"},
		Runtime:  Runtime{ContextLength: 2048, MaxConcurrentRequests: 2, CPUPolicy: CPUPolicyExclusive},
		Port:     8080,
		CacheDir: DefaultCacheDir,
	}
}

func TestFromEnvRoundTrip(t *testing.T) {
	c := valid()
	enc, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConfig, enc)
	got, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != c.Model || got.Port != c.Port || got.Runtime != c.Runtime {
		t.Errorf("round trip: got %+v, want %+v", got, c)
	}
}

func TestValidateSaysEverythingThatIsWrong(t *testing.T) {
	tests := map[string]struct {
		mutate func(*Config)
		want   []string
	}{
		"both sources":     {func(c *Config) { c.Model.OCI = "r.example.com/m:1" }, []string{"exactly one of url and oci"}},
		"no source":        {func(c *Config) { c.Model.URL = "" }, []string{"exactly one of url and oci"}},
		"a CPU policy":     {func(c *Config) { c.Runtime.CPUPolicy = "Dedicated" }, []string{`runtime.cpuPolicy "Dedicated"`}},
		"a peer":           {func(c *Config) { c.Peers.From = []string{"http://10.0.0.7:8080", "10.0.0.8:8080"} }, []string{`peers.from[1] "10.0.0.8:8080"`}},
		"a bad digest":     {func(c *Config) { c.Model.Digest = "md5:00" }, []string{`model.digest "md5:00"`}},
		"several mistakes": {func(c *Config) { c.Port = 0; c.CacheDir = "" }, []string{"port 0 is out of range", "cacheDir is empty"}},
		"a regex that is not RE2": {func(c *Config) {
			c.SelfTest = &SelfTest{Prompts: []Prompt{{Prompt: "p", MaxTokens: 4}, {Prompt: "q", MaxTokens: 4, ExpectRegex: `(?=ready)`}}}
		}, []string{"selfTest.prompts[1].expectRegex: error parsing regexp", "write an RE2 expression"}},
		"a schema keyword the self-test does not check": {func(c *Config) {
			c.SelfTest = &SelfTest{Prompts: []Prompt{{Prompt: "p", MaxTokens: 4, ExpectJSONSchema: []byte(`{"type":"object","properties":{"n":{"type":"integer","minimum":1}}}`)}}}
		}, []string{`selfTest.prompts[0].expectJSONSchema: at $.n: keyword "minimum" is not supported; the self-test checks only type, required, properties, items, enum: remove it`}},
		"a stager that reports": {func(c *Config) { c.Stage, c.Report.Enabled = true, true }, []string{"report.enabled is set on a stager"}},
		"a schema that is not JSON": {func(c *Config) {
			c.SelfTest = &SelfTest{Prompts: []Prompt{{Prompt: "p", MaxTokens: 4, ExpectJSONSchema: []byte(`{"type":`)}}}
		}, []string{"selfTest.prompts[0].expectJSONSchema: not JSON"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if err := (&Config{}).Validate(); err == nil {
		t.Error("an empty config is valid")
	}
	for _, policy := range []string{"", CPUPolicyAuto, CPUPolicyShared, CPUPolicyExclusive} {
		c := valid()
		c.Runtime.CPUPolicy = policy
		if err := c.Validate(); err != nil {
			t.Errorf("cpuPolicy %q: %v", policy, err)
		}
	}
	t.Setenv(EnvConfig, "{not json")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "parse INFERD_CONFIG") {
		t.Errorf("FromEnv on bad JSON: %v", err)
	}
}

func TestPeersOfOffersOnlyOtherNodesOfTheSameSite(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	d := &PeerDirectory{
		Nodes: map[string]string{"a": "s1", "b": "s1", "c": "s2"},
		Blobs: map[string]map[string][]PeerEntry{digest: {
			"s1": {{Node: "a", URL: "http://10.0.0.1:8080"}, {Node: "x", URL: "not a url"}, {Node: "b", URL: "http://10.0.0.2:8080"}},
			"s2": {{Node: "c", URL: "http://10.0.0.3:8080"}},
		}},
	}
	for node, want := range map[string][]string{
		"a":       {"http://10.0.0.2:8080"},
		"b":       {"http://10.0.0.1:8080"},
		"c":       nil,
		"unknown": nil,
	} {
		if got := d.PeersOf(node, digest); !slices.Equal(got, want) {
			t.Errorf("PeersOf(%s) = %v, want %v", node, got, want)
		}
	}
	if got := d.PeersOf("a", "sha256:other"); got != nil {
		t.Errorf("peers for a digest nobody holds: %v", got)
	}
	// The nodes of a site start at different holders.
	many := &PeerDirectory{Nodes: map[string]string{}, Blobs: map[string]map[string][]PeerEntry{digest: {"s": nil}}}
	for i := range 4 {
		many.Blobs[digest]["s"] = append(many.Blobs[digest]["s"], PeerEntry{Node: fmt.Sprintf("h%d", i), URL: fmt.Sprintf("http://10.0.1.%d:8080", i)})
	}
	first := map[string]bool{}
	for i := range 32 {
		node := fmt.Sprintf("n%d", i)
		many.Nodes[node] = "s"
		got := many.PeersOf(node, digest)
		if len(got) != 4 {
			t.Fatalf("PeersOf(%s) = %v; want all 4 holders", node, got)
		}
		first[got[0]] = true
	}
	if len(first) < 3 {
		t.Errorf("32 nodes start at only %d of 4 holders", len(first))
	}
	missing, err := ReadPeerDirectory(filepath.Join(t.TempDir(), "absent.json"))
	if err != nil || missing.PeersOf("a", digest) != nil {
		t.Errorf("a missing directory: %v, %v; want an empty one", missing, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPeerDirectory(bad); err == nil {
		t.Error("a malformed directory was accepted")
	}
}

func TestValidateAcceptsQualityChecks(t *testing.T) {
	c := valid()
	c.SelfTest = &SelfTest{Prompts: []Prompt{{Prompt: "p", MaxTokens: 8, ExpectRegex: `^\s*\{`,
		ExpectJSONSchema: []byte(`{"type":["object","null"],"required":["ok"],"properties":{"ok":{"enum":[true]},"l":{"items":{"type":"string"}}}}`)}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
