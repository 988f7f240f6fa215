package config

import (
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
	t.Setenv(EnvConfig, "{not json")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "parse INFERD_CONFIG") {
		t.Errorf("FromEnv on bad JSON: %v", err)
	}
}
