package fetch

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/slmops/slmops/inferd/fetch/redact"
)

// maxManifestBytes bounds the manifest read from a registry.
const maxManifestBytes = 4 << 20

// OCISource is a model file stored as one layer of an OCI artifact (as
// `oras push registry/repo:tag model.gguf` stores it). The layer is the one
// whose digest is the model's digest, so the artifact may carry other files
// (a license, a README) beside it.
type OCISource struct {
	// Reference is registry/repository:tag or registry/repository@sha256:...
	Reference string
	// Digest is the model file's digest, the layer to fetch.
	Digest string
	// PlainHTTP talks HTTP to the registry; the layer is still verified.
	PlainHTTP bool
	// Client carries TLS settings (the source's CA bundle); http.DefaultClient when nil.
	Client *http.Client
	// DockerConfigJSON is the content of a kubernetes.io/dockerconfigjson
	// Secret, for registries that need credentials. Never logged.
	DockerConfigJSON []byte

	repo  *remote.Repository
	layer *ocispec.Descriptor
}

// String names the artifact.
func (s *OCISource) String() string { return "oci://" + s.Reference }

// Open resolves the artifact's manifest (once), finds the model layer and
// opens it. Registries that accept Range requests resume at offset; the
// others send the layer from its start.
func (s *OCISource) Open(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
	if s.repo == nil {
		repo, err := remote.NewRepository(s.Reference)
		if err != nil {
			return nil, 0, &SourceError{Role: "origin", URL: s.String(), Err: redact.Error(err), permanent: true}
		}
		repo.PlainHTTP = s.PlainHTTP
		client := &auth.Client{Client: s.Client, Cache: auth.NewCache()}
		if client.Client == nil {
			client.Client = http.DefaultClient
		}
		if len(s.DockerConfigJSON) > 0 {
			cred, err := credentialFor(s.DockerConfigJSON, repo.Reference.Registry)
			if err != nil {
				return nil, 0, fmt.Errorf("%w: %w", ErrPermanent, err)
			}
			client.Credential = auth.StaticCredential(repo.Reference.Registry, cred)
		}
		repo.Client = client
		s.repo = repo
	}
	if s.layer == nil {
		layer, err := s.findLayer(ctx)
		if err != nil {
			return nil, 0, err
		}
		s.layer = layer
	}
	if offset >= s.layer.Size {
		return nil, 0, errComplete
	}
	rc, err := s.repo.Blobs().Fetch(ctx, *s.layer)
	if err != nil {
		return nil, 0, s.classify(err)
	}
	// The layer's descriptor says how big it is: the body is cut there.
	body := &ociBody{ReadCloser: rc, size: s.layer.Size}
	if offset > 0 {
		if seeker, ok := rc.(io.Seeker); ok {
			if _, err := seeker.Seek(offset, io.SeekStart); err == nil {
				return body, offset, nil
			}
		}
	}
	return body, 0, nil
}

// ociBody is a layer's body that knows the layer's size.
type ociBody struct {
	io.ReadCloser
	size int64
}

func (b *ociBody) Size() int64 { return b.size }

// findLayer reads the manifest and picks the layer with the model's digest.
func (s *OCISource) findLayer(ctx context.Context) (*ocispec.Descriptor, error) {
	desc, rc, err := s.repo.FetchReference(ctx, s.repo.Reference.Reference)
	if err != nil {
		return nil, s.classify(err)
	}
	defer rc.Close()
	if desc.Size > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest of %s is %d bytes, more than %d", ErrPermanent, s.Reference, desc.Size, maxManifestBytes)
	}
	raw, err := content.ReadAll(rc, desc)
	if err != nil {
		return nil, s.classify(err)
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("%w: %s is a %s, not an OCI image manifest", ErrPermanent, s.Reference, desc.MediaType)
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(raw, &manifest); err != nil {
		return nil, fmt.Errorf("%w: manifest of %s: %w", ErrPermanent, s.Reference, err)
	}
	want, err := digest.Parse(s.Digest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	var have []string
	for i := range manifest.Layers {
		if manifest.Layers[i].Digest == want {
			return &manifest.Layers[i], nil
		}
		have = append(have, manifest.Layers[i].Digest.String())
	}
	// The artifact is there but does not hold the model: the origin's
	// answer, the same for every node.
	return nil, &SourceError{Role: "origin", URL: s.String(), permanent: true, rejected: true,
		Err: fmt.Errorf("artifact has no layer %s (its layers: %s); is spec.digest the digest of the model file?", want, strings.Join(have, ", "))}
}

// classify turns an error of the registry client into a SourceError: its
// message redacted (the client's errors hold the URLs it requested, a
// redirect's signed target among them), and marked permanent, or rejected,
// when a retry will not change the answer.
func (s *OCISource) classify(err error) error {
	se := &SourceError{Role: "origin", URL: s.String(), Err: redact.Error(err)}
	var resp *errcode.ErrorResponse
	switch {
	case errors.As(err, &resp):
		se.Code, se.Status = resp.StatusCode, strconv.Itoa(resp.StatusCode)+" "+http.StatusText(resp.StatusCode)
		mark := answered(se.Role, se.URL, se.Code, se.Status)
		se.permanent, se.rejected = mark.permanent, mark.rejected
	case errors.Is(err, errdef.ErrNotFound):
		se.permanent, se.rejected = true, true
	case errors.Is(err, errdef.ErrInvalidReference), errors.Is(err, errdef.ErrUnsupported), errors.Is(err, auth.ErrBasicCredentialNotFound):
		se.permanent = true
	}
	return se
}

// credentialFor finds the registry's entry in a dockerconfigjson document.
func credentialFor(dockerConfigJSON []byte, registry string) (auth.Credential, error) {
	var cfg struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(dockerConfigJSON, &cfg); err != nil {
		return auth.Credential{}, fmt.Errorf("registry credentials are not a dockerconfigjson document: %w", err)
	}
	for host, entry := range cfg.Auths {
		host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
		host, _, _ = strings.Cut(host, "/")
		if host != registry && !(registry == "registry-1.docker.io" && host == "index.docker.io") {
			continue
		}
		if entry.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(entry.Auth)
			if err != nil {
				return auth.Credential{}, fmt.Errorf("registry credentials for %s: auth is not base64", registry)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return auth.Credential{}, fmt.Errorf("registry credentials for %s: auth is not user:password", registry)
			}
			return auth.Credential{Username: user, Password: pass}, nil
		}
		return auth.Credential{Username: entry.Username, Password: entry.Password}, nil
	}
	return auth.EmptyCredential, nil
}
