package fetch

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// ggufMediaType is what `oras push` users commonly give a GGUF layer.
const ggufMediaType = "application/vnd.gguf.model"

// ociRegistry is an in-process OCI registry; with a user set it asks for
// basic auth, like a private registry does.
type ociRegistry struct {
	*httptest.Server
	host      string
	blobBytes atomic.Int64
}

func newOCIRegistry(t *testing.T, user, pass string) *ociRegistry {
	t.Helper()
	r := &ociRegistry{}
	handler := registry.New(registry.Logger(nopLogger()))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			w = &countingWriter{ResponseWriter: w, n: &r.blobBytes}
		}
		handler.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	r.host = strings.TrimPrefix(r.URL, "http://")
	return r
}

// push stores files as the layers of an artifact at repo:tag, the way
// `oras push` does, and returns the reference.
func (r *ociRegistry) push(t *testing.T, repoTag string, cred auth.Credential, files ...[]byte) string {
	t.Helper()
	ctx := context.Background()
	ref := r.host + "/" + repoTag
	repo, err := remote.NewRepository(ref)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	repo.Client = &auth.Client{Credential: auth.StaticCredential(r.host, cred)}
	var layers []ocispec.Descriptor
	for i, data := range files {
		desc := content.NewDescriptorFromBytes(ggufMediaType, data)
		desc.Annotations = map[string]string{ocispec.AnnotationTitle: "file" + string(rune('a'+i))}
		if err := repo.Push(ctx, desc, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, desc)
	}
	manifest, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.slmops.model.v1", oras.PackManifestOptions{Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	tag := ref[strings.LastIndexByte(ref, ':')+1:]
	if err := repo.Tag(ctx, manifest, tag); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestAnOCIArtifactIsFetchedAndVerified(t *testing.T) {
	data, dgst := model(t, 1<<20)
	license := []byte("Apache-2.0\n")
	reg := newOCIRegistry(t, "", "")
	ref := reg.push(t, "models/tiny:q4", auth.EmptyCredential, license, data)

	f := fetcher(t)
	res, err := f.FetchFrom(context.Background(), &OCISource{Reference: ref, Digest: dgst, PlainHTTP: true}, dgst, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(res.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cached file differs from the pushed layer (%v)", err)
	}
	if res.Downloaded != int64(len(data)) || reg.blobBytes.Load() != int64(len(data)) {
		t.Errorf("downloaded %d bytes, registry served %d blob bytes; want only the model layer (%d)", res.Downloaded, reg.blobBytes.Load(), len(data))
	}

	// By digest reference too, and a second fetch is a cache hit.
	manifestRef := ref[:strings.LastIndexByte(ref, ':')]
	repo, _ := remote.NewRepository(ref)
	repo.PlainHTTP = true
	desc, err := repo.Resolve(context.Background(), "q4")
	if err != nil {
		t.Fatal(err)
	}
	f2 := fetcher(t)
	if _, err := f2.FetchFrom(context.Background(), &OCISource{Reference: manifestRef + "@" + desc.Digest.String(), Digest: dgst, PlainHTTP: true}, dgst, 0); err != nil {
		t.Fatalf("fetch by manifest digest: %v", err)
	}
	again, err := f.FetchFrom(context.Background(), &OCISource{Reference: ref, Digest: dgst, PlainHTTP: true}, dgst, 0)
	if err != nil || !again.CacheHit {
		t.Errorf("second fetch: %+v, %v; want a cache hit", again, err)
	}
}

func TestAnOCIArtifactWithoutTheModelLayerIsAClearPermanentError(t *testing.T) {
	data, _ := model(t, 4096)
	_, other := model(t, 4096)
	reg := newOCIRegistry(t, "", "")
	ref := reg.push(t, "models/tiny:q4", auth.EmptyCredential, data)
	f := fetcher(t)
	_, err := f.FetchFrom(context.Background(), &OCISource{Reference: ref, Digest: other, PlainHTTP: true}, other, 0)
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "has no layer "+other) {
		t.Fatalf("err = %v; want a permanent error naming the missing layer", err)
	}
	if _, err := f.FetchFrom(context.Background(), &OCISource{Reference: reg.host + "/models/tiny:nosuchtag", Digest: other, PlainHTTP: true}, other, 0); !errors.Is(err, ErrPermanent) {
		t.Errorf("missing tag: err = %v; want a permanent error", err)
	}
	assertEmptyCache(t, f.CacheDir)
}

func TestAnOCILayerWithTheWrongBytesNeverReachesTheCache(t *testing.T) {
	data, dgst := model(t, 64<<10)
	reg := newOCIRegistry(t, "", "")
	ref := reg.push(t, "models/tiny:q4", auth.EmptyCredential, data)
	// The source hands over a layer whose bytes are not the file the
	// SLMModel declares: the streaming hash refuses it.
	_, wrong := model(t, 64<<10)
	f := fetcher(t)
	src := &OCISource{Reference: ref, Digest: dgst, PlainHTTP: true}
	if _, err := f.FetchFrom(context.Background(), src, wrong, 0); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err = %v; want ErrDigestMismatch", err)
	}
	assertEmptyCache(t, f.CacheDir)
}

func TestAPrivateRegistryIsReadWithDockerConfigCredentials(t *testing.T) {
	data, dgst := model(t, 64<<10)
	reg := newOCIRegistry(t, "edge", "s3cret")
	ref := reg.push(t, "models/tiny:q4", auth.Credential{Username: "edge", Password: "s3cret"}, data)

	f := fetcher(t)
	if _, err := f.FetchFrom(context.Background(), &OCISource{Reference: ref, Digest: dgst, PlainHTTP: true}, dgst, 0); !errors.Is(err, ErrPermanent) {
		t.Fatalf("without credentials: err = %v; want a permanent (401) error", err)
	}
	cfg := `{"auths":{"` + reg.host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("edge:s3cret")) + `"}}}`
	res, err := f.FetchFrom(context.Background(), &OCISource{Reference: ref, Digest: dgst, PlainHTTP: true, DockerConfigJSON: []byte(cfg)}, dgst, 0)
	if err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	if got, _ := os.ReadFile(res.Path); !bytes.Equal(got, data) {
		t.Error("cached file differs from the pushed layer")
	}
	_, err = fetcher(t).FetchFrom(context.Background(), &OCISource{Reference: ref, Digest: dgst, PlainHTTP: true, DockerConfigJSON: []byte("{not json")}, dgst, 0)
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "dockerconfigjson") {
		t.Errorf("bad credentials document: %v", err)
	}
}

func assertEmptyCache(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(dir, "sha256"))
	if len(entries) != 0 {
		t.Errorf("cache holds %d files; want none", len(entries))
	}
	partials, _ := filepath.Glob(filepath.Join(dir, "partial", "*"))
	for _, p := range partials {
		if !strings.HasSuffix(p, ".lock") {
			if st, err := os.Stat(p); err == nil && st.Size() > 0 {
				t.Errorf("a partial download was left behind: %s", p)
			}
		}
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }
