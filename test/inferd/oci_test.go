package inferd

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/server"
)

// TestInferdServesAModelFromAnOCIRegistry: the model pushed as an OCI
// artifact (as `oras push` does) to an in-process registry is fetched,
// verified, loaded and served.
func TestInferdServesAModelFromAnOCIRegistry(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	ref := strings.TrimPrefix(reg.URL, "http://") + "/models/tiny:q8"

	ctx := context.Background()
	repo, err := remote.NewRepository(ref)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	layer := content.NewDescriptorFromBytes("application/vnd.gguf.model", m.data)
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: "tiny.gguf"}
	if err := repo.Push(ctx, layer, bytes.NewReader(m.data)); err != nil {
		t.Fatal(err)
	}
	manifest, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.slmops.model.v1", oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, manifest, "q8"); err != nil {
		t.Fatal(err)
	}

	cfg := baseConfig(t, "tiny", m, "")
	cfg.Model.URL, cfg.Model.OCI = "", ref
	cfg.SelfTest = goldenSelfTest()
	p := start(t, cfg)
	st := p.waitPhase(server.PhaseReady, 30*time.Second)
	if st.Model.Source != "oci://"+ref || st.Model.DownloadBytes != int64(len(m.data)) {
		t.Errorf("model status %+v", st.Model)
	}
}
