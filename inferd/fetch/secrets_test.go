package fetch

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"oras.land/oras-go/v2/registry/remote/auth"
)

// signed is what a presigned URL carries: userinfo and a signature in the query.
func signed(base string) string {
	u, _ := url.Parse(base)
	u.User = url.UserPassword("user", "PASS")
	u.Path += "/m.gguf"
	u.RawQuery = "X-Amz-Expires=900&X-Amz-Signature=SECRET"
	return u.String()
}

func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// redirector answers every request with a redirect to target.
func redirector(t *testing.T, target string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}))
	t.Cleanup(s.Close)
	return s
}

func answering(t *testing.T, code int) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, http.StatusText(code), code)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestNoErrorCarriesTheSecretsOfASignedURL drives every way a fetch fails
// with a URL that holds user:PASS@ and X-Amz-Signature=SECRET: the error
// names the URL without them, is classified, and holds no *url.Error.
func TestNoErrorCarriesTheSecretsOfASignedURL(t *testing.T) {
	_, digest := model(t, 1024)
	tlsOrigin := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsOrigin.Config.ErrorLog = nopLogger() // the client's refusal of its certificate is the point
	tlsOrigin.StartTLS()
	defer tlsOrigin.Close()
	forbidden := answering(t, http.StatusForbidden)

	// An OCI registry that redirects blob downloads to signed storage URLs,
	// as registries backed by object stores do.
	data, dgst := model(t, 4096)
	reg := newOCIRegistry(t, "", "")
	ref := reg.push(t, "models/tiny:q4", auth.EmptyCredential, data)
	ociVia := func(target string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") {
				http.Redirect(w, r, target, http.StatusTemporaryRedirect)
				return
			}
			reg.Config.Handler.ServeHTTP(w, r)
		}))
		t.Cleanup(s.Close)
		return s
	}
	ociRef := func(s *httptest.Server) string {
		return strings.TrimPrefix(s.URL, "http://") + ref[strings.IndexByte(ref, '/'):]
	}

	for name, tc := range map[string]struct {
		src      func(f *Fetcher) Source
		digest   string
		rejected bool
	}{
		"a dial error": {src: func(f *Fetcher) Source { return HTTPSource(f, signed(deadAddress(t))) }},
		"a TLS error":  {src: func(f *Fetcher) Source { return HTTPSource(f, signed(tlsOrigin.URL)) }},
		"a redirect to a dead target": {src: func(f *Fetcher) Source {
			return HTTPSource(f, signed(redirector(t, signed(deadAddress(t))).URL))
		}},
		"a redirect to a target that answers 403": {rejected: true, src: func(f *Fetcher) Source {
			return HTTPSource(f, signed(redirector(t, signed(forbidden.URL)).URL))
		}},
		"a 404": {rejected: true, src: func(f *Fetcher) Source { return HTTPSource(f, signed(answering(t, http.StatusNotFound).URL)) }},
		"a 500": {src: func(f *Fetcher) Source {
			return HTTPSource(f, signed(answering(t, http.StatusInternalServerError).URL))
		}},
		"an OCI blob redirected to a signed URL that answers 403": {digest: dgst, rejected: true, src: func(f *Fetcher) Source {
			return &OCISource{Reference: ociRef(ociVia(signed(forbidden.URL))), Digest: dgst, PlainHTTP: true}
		}},
		"an OCI blob redirected to a dead signed URL": {digest: dgst, src: func(f *Fetcher) Source {
			return &OCISource{Reference: ociRef(ociVia(signed(deadAddress(t)))), Digest: dgst, PlainHTTP: true}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			f := fetcher(t)
			f.Attempts = 2
			d := digest
			if tc.digest != "" {
				d = tc.digest
			}
			// As the origin, and as a peer's source would fail the same way.
			_, _, err := f.FetchVia(context.Background(), nil, tc.src(f), d, 0)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "SECRET") || strings.Contains(msg, "PASS") || strings.Contains(msg, "user@") {
				t.Errorf("the error leaks a secret: %s", msg)
			}
			if !strings.Contains(msg, "?REDACTED") {
				t.Errorf("the error does not name the (redacted) URL: %s", msg)
			}
			var ue *url.Error
			if errors.As(err, &ue) {
				t.Errorf("a raw *url.Error escapes: %q", ue.URL)
			}
			var se *SourceError
			if errors.As(err, &se) && (strings.Contains(se.URL, "SECRET") || strings.Contains(se.URL, "PASS")) {
				t.Errorf("the SourceError's URL is not redacted: %s", se.URL)
			}
			if errors.Is(err, ErrRejected) != tc.rejected || errors.Is(err, ErrRejected) && !errors.Is(err, ErrPermanent) {
				t.Errorf("rejected %v, permanent %v; want rejected %v: %s", errors.Is(err, ErrRejected), errors.Is(err, ErrPermanent), tc.rejected, msg)
			}
			t.Log(msg)
		})
	}
}
