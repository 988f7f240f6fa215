package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/slmops/slmops/test/skip"
)

// fakeDist lays out dist/build/<os>_<arch>/kubectl-slm for every platform,
// each binary's content naming its platform, as make release does.
func fakeDist(t *testing.T) string {
	t.Helper()
	dist := t.TempDir()
	for _, p := range Platforms {
		dir := filepath.Join(dist, "build", p.OS+"_"+p.Arch)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, Binary), []byte("binary for "+p.OS+"/"+p.Arch), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dist
}

func sha256Of(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// untar is the files of a gzipped tar by name, with their modes.
func untar(t *testing.T, path string) (map[string]string, map[string]int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files, modes := map[string]string{}, map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], modes[h.Name] = string(b), h.Mode
	}
	return files, modes
}

// TestReleaseManifest: the krew manifest names one platform per os/arch
// pair, each with the archive's URL under the base URL, the archive's
// sha256 and the binary; the archives hold the platform's binary and the
// license, and checksums.txt agrees with them.
func TestReleaseManifest(t *testing.T) {
	dist := fakeDist(t)
	license := filepath.Join(t.TempDir(), "LICENSE")
	if err := os.WriteFile(license, []byte("the license"), 0o644); err != nil {
		t.Fatal(err)
	}
	const base = "https://example.com/releases/v1.2.3/"
	if err := Release(dist, "v1.2.3", base, license); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(dist, "slm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m plugin
	if err := yaml.UnmarshalStrict(raw, &m); err != nil {
		t.Fatalf("slm.yaml: %v\n%s", err, raw)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "slm" {
		t.Errorf("slm.yaml is %s %s %q; want krew.googlecontainertools.github.com/v1alpha2 Plugin \"slm\"", m.APIVersion, m.Kind, m.Metadata.Name)
	}
	if m.Spec.Version != "v1.2.3" || m.Spec.Homepage == "" || m.Spec.ShortDescription == "" || m.Spec.Description == "" {
		t.Errorf("spec: version %q (want v1.2.3), homepage %q, shortDescription %q, description %q: krew needs all",
			m.Spec.Version, m.Spec.Homepage, m.Spec.ShortDescription, m.Spec.Description)
	}

	var sums []string
	f, err := os.Open(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for s := bufio.NewScanner(f); s.Scan(); {
		sums = append(sums, s.Text())
	}

	var got, want []string
	var wantSums []string
	for _, p := range Platforms {
		want = append(want, p.OS+"/"+p.Arch)
		name := "kubectl-slm_v1.2.3_" + p.OS + "_" + p.Arch + ".tar.gz"
		wantSums = append(wantSums, sha256Of(t, filepath.Join(dist, name))+"  "+name)
		files, modes := untar(t, filepath.Join(dist, name))
		if diff := cmp.Diff(map[string]string{"kubectl-slm": "binary for " + p.OS + "/" + p.Arch, "LICENSE": "the license"}, files); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
		if modes["kubectl-slm"] != 0o755 {
			t.Errorf("%s: kubectl-slm has mode %o; want 755", name, modes["kubectl-slm"])
		}
	}
	if diff := cmp.Diff(wantSums, sums); diff != "" {
		t.Errorf("checksums.txt (-want +got):\n%s", diff)
	}
	for _, pl := range m.Spec.Platforms {
		goos, goarch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		got = append(got, goos+"/"+goarch)
		name := "kubectl-slm_v1.2.3_" + goos + "_" + goarch + ".tar.gz"
		if len(pl.Selector.MatchLabels) != 2 {
			t.Errorf("%s/%s: selector %v; want only os and arch", goos, goarch, pl.Selector.MatchLabels)
		}
		if pl.URI != "https://example.com/releases/v1.2.3/"+name {
			t.Errorf("%s/%s: uri %s; want the base URL and %s", goos, goarch, pl.URI, name)
		}
		if s := sha256Of(t, filepath.Join(dist, name)); pl.SHA256 != s {
			t.Errorf("%s/%s: sha256 %s; the archive's is %s", goos, goarch, pl.SHA256, s)
		}
		if pl.Bin != "kubectl-slm" {
			t.Errorf("%s/%s: bin %q; want kubectl-slm", goos, goarch, pl.Bin)
		}
		if diff := cmp.Diff([]file{{"kubectl-slm", "."}, {"LICENSE", "."}}, pl.Files); diff != "" {
			t.Errorf("%s/%s: files (-want +got):\n%s", goos, goarch, diff)
		}
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}, got); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("platforms against Platforms (-want +got):\n%s", diff)
	}
}

// TestReleaseIsReproducible: the same binaries make the same archives, so
// a rebuild from the same commit keeps the manifest's checksums.
func TestReleaseIsReproducible(t *testing.T) {
	dist := fakeDist(t)
	if err := Release(dist, "v0.1.0", "https://example.com/r", "no-such-license"); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(dist, "slm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := untar(t, filepath.Join(dist, ArchiveName("v0.1.0", Platforms[0])))
	if _, ok := files["LICENSE"]; ok || len(files) != 1 {
		t.Errorf("without a license file the archive holds %v; want kubectl-slm alone", files)
	}
	if err := Release(dist, "v0.1.0", "https://example.com/r", "no-such-license"); err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(filepath.Join(dist, "slm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(first), string(second)); diff != "" {
		t.Errorf("a second release of the same binaries differs (-first +second):\n%s", diff)
	}
}

// TestReleaseRejects: what krew would reject, or a missing binary, fails
// the release instead of publishing a manifest that does not install.
func TestReleaseRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		version, baseURL string
		drop             bool
		want             string
	}{
		"a version that is not v-prefixed semver": {version: "0.1.0", baseURL: "https://example.com", want: "semver"},
		"a version with only two numbers":         {version: "v0.1", baseURL: "https://example.com", want: "semver"},
		"a base URL that is not http(s)":          {version: "v0.1.0", baseURL: "dist/", want: "not an http(s) URL"},
		"a platform's binary is missing":          {version: "v0.1.0", baseURL: "https://example.com", drop: true, want: "darwin/arm64"},
	} {
		t.Run(name, func(t *testing.T) {
			dist := fakeDist(t)
			if tc.drop {
				if err := os.Remove(filepath.Join(dist, "build", "darwin_arm64", Binary)); err != nil {
					t.Fatal(err)
				}
			}
			err := Release(dist, tc.version, tc.baseURL, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Release: %v; want an error about %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dist, "slm.yaml")); err == nil {
				t.Error("slm.yaml written anyway")
			}
		})
	}
}

// TestMakefilePlatforms: make release builds exactly the platforms that
// the manifest lists.
func TestMakefilePlatforms(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RELEASE_PLATFORMS := (.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the Makefile has no RELEASE_PLATFORMS")
	}
	var want []string
	for _, p := range Platforms {
		want = append(want, p.OS+"/"+p.Arch)
	}
	if diff := cmp.Diff(want, strings.Fields(string(m[1]))); diff != "" {
		t.Errorf("RELEASE_PLATFORMS against Platforms (-want +got):\n%s", diff)
	}
}

// krew is the krew binary that SLMOPS_KREW names (the Makefile sets it),
// or bin/krew-current/krew; without it the test skips loudly.
func krew(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SLMOPS_KREW")
	if path == "" {
		path = filepath.Join("..", "..", "bin", "krew-current", "krew")
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		skip.Because(t, "installing the release with krew from its manifest: no krew at "+path, "make krew")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestKrewInstallsTheRelease: krew itself (built from its Go module)
// accepts the manifest and installs this machine's archive from it, as
// `kubectl krew install` does from a published release, with kubectl-slm
// linked into its bin folder; and it refuses an archive whose sha256 is not
// the manifest's.
func TestKrewInstallsTheRelease(t *testing.T) {
	krew := krew(t)
	dist := fakeDist(t)
	if err := Release(dist, "v1.2.3", "https://example.com/releases/v1.2.3", ""); err != nil {
		t.Fatal(err)
	}
	// krew picks the platform it runs on; this machine's must be one.
	here := Platform{runtime.GOOS, runtime.GOARCH}
	if !slices.Contains(Platforms, here) {
		skip.Because(t, "installing the release with krew: "+here.OS+"/"+here.Arch+" is not a release platform", "a linux or darwin machine, amd64 or arm64")
	}
	install := func(archive string) (string, string, error) {
		root := t.TempDir()
		cmd := exec.Command(krew, "install", "--manifest="+filepath.Join(dist, "slm.yaml"), "--archive="+archive)
		cmd.Env = append(os.Environ(), "KREW_ROOT="+root, "KREW_NO_UPGRADE_CHECK=1")
		out, err := cmd.CombinedOutput()
		return root, string(out), err
	}

	root, out, err := install(filepath.Join(dist, ArchiveName("v1.2.3", here)))
	if err != nil {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(root, "bin", Binary))
	if err != nil {
		t.Fatalf("krew installed no %s: %v\n%s", Binary, err, out)
	}
	if want := "binary for " + here.OS + "/" + here.Arch; string(b) != want {
		t.Errorf("krew linked a %s that holds %q; want %q", Binary, b, want)
	}

	// Another platform's archive has another sha256.
	other := Platforms[0]
	if other == here {
		other = Platforms[1]
	}
	if _, out, err := install(filepath.Join(dist, ArchiveName("v1.2.3", other))); err == nil {
		t.Errorf("krew installed an archive whose sha256 is not the manifest's:\n%s", out)
	} else if !strings.Contains(out, "sha256") && !strings.Contains(out, "checksum") {
		t.Errorf("krew refused the wrong archive, but not for its checksum: %v\n%s", err, out)
	}
}
