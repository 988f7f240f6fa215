package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// blobGetter asks a ServeBlob handler for digest.
func blobGetter(t *testing.T, f *Fetcher, digest string) func() (int, []byte) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(f.ServeBlob))
	t.Cleanup(srv.Close)
	return func() (int, []byte) {
		resp, err := http.Get(srv.URL + BlobPath + digest)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
}

// eventually waits until cond holds, for at most 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	b := make([]byte, 1)
	if _, err := file.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := file.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestAPeerNeverServesAFileThatChangedOnDisk: a verified file is served;
// once it changed (a write, a truncation) it is not, it is checked, and
// when it no longer hashes to its digest it is removed (to be fetched
// again) and is a 404 from then on.
func TestAPeerNeverServesAFileThatChangedOnDisk(t *testing.T) {
	data, digest := model(t, 256<<10)
	o := newOrigin(t, data, nil)
	f := fetcher(t)
	res, err := f.Fetch(context.Background(), o.URL, digest, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	get := blobGetter(t, f, digest)
	if code, b := get(); code != http.StatusOK || !bytes.Equal(b, data) {
		t.Fatalf("the verified file: %d, %d bytes; want 200 and the model", code, len(b))
	}
	flipByte(t, res.Path, 4242)
	later := time.Now().Add(time.Second) // a write changes the time; make sure it is seen as one
	if err := os.Chtimes(res.Path, later, later); err != nil {
		t.Fatal(err)
	}
	if code, b := get(); code == http.StatusOK {
		t.Fatalf("served %d rotted bytes", len(b))
	}
	eventually(t, "the rotted file is removed and answered 404", func() bool {
		code, _ := get()
		return code == http.StatusNotFound && !exists(res.Path)
	})
	if err := f.Check(context.Background(), digest); !errors.Is(err, ErrNotCached) {
		t.Errorf("Check of the removed file: %v; want ErrNotCached", err)
	}
}

// TestAFileThatRotsInPlaceStopsBeingServedOnSchedule: a bit flip that
// changes neither size nor time is found by the scheduled re-verification.
func TestAFileThatRotsInPlaceStopsBeingServedOnSchedule(t *testing.T) {
	data, digest := model(t, 256<<10)
	o := newOrigin(t, data, nil)
	f := fetcher(t)
	f.ReverifyAfter = 50 * time.Millisecond
	res, err := f.Fetch(context.Background(), o.URL, digest, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(res.Path)
	flipByte(t, res.Path, 99)
	if err := os.Chtimes(res.Path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	get := blobGetter(t, f, digest)
	time.Sleep(60 * time.Millisecond)
	eventually(t, "the rotted file is found and removed", func() bool {
		code, _ := get()
		return code == http.StatusNotFound && !exists(res.Path)
	})
}

// TestAFileThisProcessDidNotVerifyIsCheckedBeforeItIsServed: a file another
// process placed (or that was there before a restart) is a 503 while this
// process hashes it, then served.
func TestAFileThisProcessDidNotVerifyIsCheckedBeforeItIsServed(t *testing.T) {
	data, digest := model(t, 256<<10)
	f := fetcher(t)
	path, _ := f.Path(digest)
	if err := os.MkdirAll(path[:len(path)-65], 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	get := blobGetter(t, f, digest)
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Errorf("an unverified file: %d; want 503 while it is checked", code)
	}
	eventually(t, "the file is served once verified", func() bool {
		code, b := get()
		return code == http.StatusOK && bytes.Equal(b, data)
	})
	if err := f.Check(context.Background(), digest); err != nil {
		t.Errorf("Check of a verified file: %v", err)
	}
}
