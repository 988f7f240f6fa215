// Package config is the contract between the operator and inferd: what the
// operator puts into each inferd pod (one JSON document in the INFERD_CONFIG
// environment variable, plus secrets as their own variables) and what inferd
// reads at start.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slmops/slmops/inferd/selftest/jsonschema"
)

// Environment variables of the inferd container.
const (
	// EnvConfig holds the JSON Config.
	EnvConfig = "INFERD_CONFIG"
	// EnvAuthorization holds the Authorization header for the model source,
	// from the SLMModel's secretRef; it is never part of Config, so it never
	// reaches a log or the pod spec.
	EnvAuthorization = "INFERD_MODEL_AUTHORIZATION"
	// EnvRegistryAuth holds the .dockerconfigjson of the SLMModel's OCI
	// pullSecretRef; like EnvAuthorization it never reaches a log.
	EnvRegistryAuth = "INFERD_REGISTRY_AUTH"
	// EnvNodeName is the node inferd runs on (the downward API's spec.nodeName).
	EnvNodeName = "INFERD_NODE_NAME"
	// EnvPodName and EnvPodNamespace are inferd's pod (the downward API's
	// metadata.name and metadata.namespace): where it writes its self-test
	// report.
	EnvPodName      = "INFERD_POD_NAME"
	EnvPodNamespace = "INFERD_POD_NAMESPACE"
	// EnvAPIToken, when set, is the bearer token that inferd's
	// OpenAI-compatible API requires, from the EdgeRollout's
	// template.apiTokenSecretRef; like EnvAuthorization it never reaches a
	// log or the pod spec.
	EnvAPIToken = "INFERD_API_TOKEN"
	// EnvMemoryLimit is the memory in bytes the inferd container may use:
	// the downward API's limits.memory, which is the container's memory
	// limit, or the node's allocatable memory when it has none. inferd
	// checks its estimate of the model's memory against it before it loads
	// the model.
	EnvMemoryLimit = "INFERD_MEMORY_LIMIT_BYTES"
)

// MemoryLimitFromEnv reads EnvMemoryLimit: 0 when it is unset, an error
// naming the variable when it is not a whole number of bytes of at least 1.
func MemoryLimitFromEnv(getenv func(string) string) (int64, error) {
	v := strings.TrimSpace(getenv(EnvMemoryLimit))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want the container's memory limit in bytes (the downward API's limits.memory with divisor 1)", EnvMemoryLimit, v)
	}
	return n, nil
}

// DefaultCacheDir is the node-local model cache, a hostPath that K3s nodes keep
// across pod restarts.
const DefaultCacheDir = "/var/lib/slmops/models"

// Config is what inferd needs to fetch, verify, load, test and serve a model.
type Config struct {
	// Model is the artifact.
	Model Model `json:"model"`
	// Runtime is how to run it.
	Runtime Runtime `json:"runtime"`
	// SelfTest is the gate before ready; nil means load only.
	SelfTest *SelfTest `json:"selfTest,omitempty"`
	// Port to serve on.
	Port int32 `json:"port"`
	// CacheDir is the node-local model cache.
	CacheDir string `json:"cacheDir"`
	// Peers is site-local sharing of verified model files.
	Peers Peers `json:"peers,omitempty"`
	// Download bounds the download.
	Download Download `json:"download,omitempty"`
	// Stage makes inferd a stager: it fetches and verifies the model into the
	// cache and serves it to peers, ready once the file is in place, without
	// loading it; it exits with a termination message when it cannot.
	Stage bool `json:"stage,omitempty"`
	// Cache is how inferd shares the node cache with the pods of other
	// revisions and rollouts on the node.
	Cache Cache `json:"cache,omitempty"`
	// Report is whether inferd writes its self-test report into its pod.
	Report Reporting `json:"report,omitempty"`
}

// Reporting is how inferd tells the operator what its self-test measured:
// once per pod, after the self-test, the Report in the pod's annotation
// ReportAnnotation, written with the pod's ServiceAccount token. Only
// serving pods report; a stager runs no self-test and mounts no token.
type Reporting struct {
	// Enabled turns the report on. Without a mounted token inferd says that
	// reporting is off and serves all the same.
	Enabled bool `json:"enabled,omitempty"`
}

// Cache says which files of the node cache a rollout may still need. The
// node cache is shared by every rollout on the node; a file is evicted only
// when no rollout pins it.
type Cache struct {
	// PinsFile is a Pins document (JSON) that the operator keeps up to date
	// (the ConfigMap <rollout>-cache, key PinsKey, mounted into the pods):
	// every digest the rollout may return to. Empty: inferd evicts nothing.
	PinsFile string `json:"pinsFile,omitempty"`
	// Owner names this rollout's pin record in the node cache
	// ("<namespace>.<rollout>"), so that the pods of one rollout see what the
	// others pinned.
	Owner string `json:"owner,omitempty"`
	// MaxBytes bounds the files no rollout pins: past it they are evicted,
	// least recently used first; 0 evicts every unpinned file.
	MaxBytes int64 `json:"maxBytes,omitempty"`
}

// PinsKey is the key of the Pins document in its ConfigMap.
const PinsKey = "pins.json"

// Pins are the digests a rollout may return to: the stable and canary
// revisions' artifacts.
type Pins struct {
	Digests []string `json:"digests"`
}

// Download bounds how inferd downloads the model.
type Download struct {
	// BytesPerSecond limits the download rate; 0 is unlimited (or the
	// --download-rate flag's).
	BytesPerSecond int64 `json:"bytesPerSecond,omitempty"`
	// DiskHeadroomBytes must stay free on the cache's filesystem once the
	// model is in place; a download that would leave less does not start.
	DiskHeadroomBytes int64 `json:"diskHeadroomBytes,omitempty"`
}

// Peers is how inferd shares verified model files with the other nodes of
// its site. Whatever a peer sends is kept only if the whole file hashes to
// the model's digest, so a bad peer costs a download, never a bad model.
type Peers struct {
	// Serve makes inferd serve the verified files of its cache at
	// /v1/blobs/sha256:<hex> on its port (never a partial download).
	Serve bool `json:"serve,omitempty"`
	// From are base URLs (http://<node>:<port>) of peers to fetch the model
	// from, in order, before the origin.
	From []string `json:"from,omitempty"`
	// File is a PeerDirectory (JSON) that the operator keeps up to date, read
	// before every fetch round: the peers of this node's site that hold the
	// model, tried after From.
	File string `json:"file,omitempty"`
}

// PeerDirectory is the document the operator writes for a rollout (the
// ConfigMap <rollout>-peers, key PeerDirectoryKey, mounted into the pods): for
// every model digest, the nodes of each site that hold its verified file.
type PeerDirectory struct {
	// Nodes maps a node to its site.
	Nodes map[string]string `json:"nodes"`
	// Blobs maps a digest to its holders per site, in the order to try them.
	Blobs map[string]map[string][]PeerEntry `json:"blobs"`
}

// PeerEntry is one node that holds a verified file.
type PeerEntry struct {
	Node string `json:"node"`
	URL  string `json:"url"`
}

// PeerDirectoryKey is the key of the peer directory in its ConfigMap.
const PeerDirectoryKey = "peers.json"

// PeersOf are the base URLs of the peers in node's site that hold digest,
// never node itself; none when the node has no site. Each node starts at
// its own place in the list (by a hash of its name), so that the nodes of a
// site spread their downloads over the holders instead of all asking the
// first.
func (d *PeerDirectory) PeersOf(node, digest string) []string {
	site, ok := d.Nodes[node]
	if !ok {
		return nil
	}
	list := d.Blobs[digest][site]
	if len(list) > 1 {
		h := fnv.New32a()
		_, _ = h.Write([]byte(node))
		k := int(h.Sum32() % uint32(len(list)))
		list = append(slices.Clone(list[k:]), list[:k]...)
	}
	var out []string
	for _, p := range list {
		if p.Node == node {
			continue
		}
		if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		out = append(out, p.URL)
	}
	return out
}

// ReadPeerDirectory reads a PeerDirectory; a missing file is an empty one
// (the operator has not written it yet, or peer sharing is off).
func ReadPeerDirectory(path string) (*PeerDirectory, error) {
	d := &PeerDirectory{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("parse peer directory %s: %w", path, err)
	}
	return d, nil
}

// Model is one model artifact.
type Model struct {
	// Name is the SLMModel's name, served as the model id of the API.
	Name string `json:"name"`
	// URL is an http(s) source; OCI is an OCI artifact reference. Exactly one is set.
	URL string `json:"url,omitempty"`
	OCI string `json:"oci,omitempty"`
	// AllowInsecureHTTP permits a plain-HTTP source.
	AllowInsecureHTTP bool `json:"allowInsecureHTTP,omitempty"`
	// CABundle is extra PEM roots for the source.
	CABundle string `json:"caBundle,omitempty"`
	// Digest is sha256:<hex> of the file.
	Digest string `json:"digest"`
	// Quantization, Architecture and SizeBytes are checked against the file.
	Quantization string `json:"quantization"`
	Architecture string `json:"architecture,omitempty"`
	SizeBytes    int64  `json:"sizeBytes,omitempty"`
}

// Runtime is how inferd runs the model.
type Runtime struct {
	ContextLength         int32 `json:"contextLength"`
	Threads               int32 `json:"threads,omitempty"`
	MaxConcurrentRequests int32 `json:"maxConcurrentRequests"`
	// CPUPolicy is Auto (or empty), Shared or Exclusive: whether compute
	// threads may poll briefly before they sleep (see SLMModel
	// spec.runtime).
	CPUPolicy string `json:"cpuPolicy,omitempty"`
}

// CPU policies of Runtime.CPUPolicy.
const (
	CPUPolicyAuto      = "Auto"
	CPUPolicyShared    = "Shared"
	CPUPolicyExclusive = "Exclusive"
)

// SelfTest is the on-node gate.
type SelfTest struct {
	Prompts             []Prompt      `json:"prompts"`
	MinTokensPerSecond  int32         `json:"minTokensPerSecond,omitempty"`
	MaxTimeToFirstToken time.Duration `json:"maxTimeToFirstToken,omitempty"`
	Timeout             time.Duration `json:"timeout,omitempty"`
}

// Prompt is one golden prompt.
type Prompt struct {
	Prompt         string `json:"prompt"`
	MaxTokens      int32  `json:"maxTokens"`
	ExpectContains string `json:"expectContains,omitempty"`
	// ExpectRegex is an RE2 expression the answer must match.
	ExpectRegex string `json:"expectRegex,omitempty"`
	// ExpectJSONSchema is a JSON Schema (the subset the self-test checks)
	// the answer, read as JSON, must satisfy.
	ExpectJSONSchema json.RawMessage `json:"expectJSONSchema,omitempty"`
}

var digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// Validate reports what is wrong with c, all at once.
func (c *Config) Validate() error {
	var errs []error
	if (c.Model.URL == "") == (c.Model.OCI == "") {
		errs = append(errs, errors.New("model: set exactly one of url and oci"))
	}
	if !digestPattern.MatchString(c.Model.Digest) {
		errs = append(errs, fmt.Errorf("model.digest %q is not sha256:<64 lowercase hex>", c.Model.Digest))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is out of range", c.Port))
	}
	if c.CacheDir == "" {
		errs = append(errs, errors.New("cacheDir is empty"))
	}
	if c.Runtime.ContextLength <= 0 || c.Runtime.MaxConcurrentRequests <= 0 {
		errs = append(errs, errors.New("runtime.contextLength and runtime.maxConcurrentRequests must be positive"))
	}
	for i, p := range c.Peers.From {
		if u, err := url.Parse(p); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("peers.from[%d] %q is not an http(s) base URL", i, p))
		}
	}
	if c.Download.BytesPerSecond < 0 || c.Download.DiskHeadroomBytes < 0 {
		errs = append(errs, errors.New("download.bytesPerSecond and download.diskHeadroomBytes must not be negative"))
	}
	if c.SelfTest != nil {
		errs = append(errs, c.SelfTest.validate()...)
	}
	if c.Stage && c.Report.Enabled {
		errs = append(errs, errors.New("report.enabled is set on a stager: a stager runs no self-test, so only serving pods report"))
	}
	switch c.Runtime.CPUPolicy {
	case "", CPUPolicyAuto, CPUPolicyShared, CPUPolicyExclusive:
	default:
		errs = append(errs, fmt.Errorf("runtime.cpuPolicy %q is not %s, %s or %s", c.Runtime.CPUPolicy, CPUPolicyAuto, CPUPolicyShared, CPUPolicyExclusive))
	}
	return errors.Join(errs...)
}

// validate checks what the self-test compiles: each prompt's expectRegex
// (RE2) and expectJSONSchema (the subset inferd/selftest/jsonschema checks),
// so that a mistake is an InvalidConfig before the rollout, not a failed
// self-test on every node.
func (st *SelfTest) validate() []error {
	var errs []error
	for i, p := range st.Prompts {
		if p.ExpectRegex != "" {
			if _, err := regexp.Compile(p.ExpectRegex); err != nil {
				errs = append(errs, fmt.Errorf("selfTest.prompts[%d].expectRegex: %w; write an RE2 expression (Go's regexp: no lookaround, no backreferences)", i, err))
			}
		}
		if len(p.ExpectJSONSchema) > 0 {
			if _, err := jsonschema.Compile(p.ExpectJSONSchema); err != nil {
				errs = append(errs, fmt.Errorf("selfTest.prompts[%d].expectJSONSchema: %w", i, err))
			}
		}
	}
	return errs
}

// Encode returns c as the value of INFERD_CONFIG.
func (c *Config) Encode() (string, error) {
	b, err := json.Marshal(c)
	return string(b), err
}

// FromEnv reads and validates the Config in INFERD_CONFIG.
func FromEnv() (*Config, error) {
	raw := os.Getenv(EnvConfig)
	if raw == "" {
		return nil, fmt.Errorf("%s is not set", EnvConfig)
	}
	c := &Config{}
	if err := json.Unmarshal([]byte(raw), c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", EnvConfig, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvConfig, err)
	}
	return c, nil
}
