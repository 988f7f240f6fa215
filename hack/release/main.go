// Command release packages the kubectl-slm binaries that `make release`
// cross-builds into the archives users download, and writes what
// installers check them against: a checksums file (sha256sum's format) and
// the krew plugin manifest that `kubectl krew install` reads.
//
//	go run ./hack/release -dist dist -version v0.1.0 -base-url https://example.com/releases/v0.1.0
//
// It reads dist/build/<os>_<arch>/kubectl-slm for each platform and writes
// dist/kubectl-slm_<version>_<os>_<arch>.tar.gz (the binary, and LICENSE
// when the repository has one), dist/checksums.txt and dist/slm.yaml. The
// archives are reproducible (fixed times, owners and modes), so their
// checksums depend on the binaries alone.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Platform is an operating system and architecture a release is built for.
type Platform struct {
	OS   string
	Arch string
}

// Platforms are the ones krew users run kubectl on that the plugin is
// built for.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}

// Binary is the plugin's executable; krew links it as `kubectl slm`.
const Binary = "kubectl-slm"

// PluginName is the krew name of the plugin, and of its manifest file.
const PluginName = "slm"

// Archive is one platform's release archive.
type Archive struct {
	Platform Platform
	// Name is the file's name in the release, which the base URL serves.
	Name string
	// SHA256 is the hex sha256 of the file.
	SHA256 string
}

// ArchiveName is the file name of the archive of version for p.
func ArchiveName(version string, p Platform) string {
	return fmt.Sprintf("%s_%s_%s_%s.tar.gz", Binary, version, p.OS, p.Arch)
}

// semver is the version form krew accepts: v, major.minor.patch, and an
// optional pre-release and build.
var semver = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func main() {
	dist := flag.String("dist", "dist", "folder with build/<os>_<arch>/"+Binary+"; the archives, checksums.txt and "+PluginName+".yaml go here")
	version := flag.String("version", "", "release version, v-prefixed semver (krew requires it), for example v0.1.0")
	baseURL := flag.String("base-url", "", "URL of the folder the archives are published in; each platform's uri is <base-url>/<archive name>")
	license := flag.String("license", "LICENSE", "license file to put in each archive; left out when it does not exist")
	flag.Parse()
	if err := Release(*dist, *version, *baseURL, *license); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// Release archives the binaries of every platform under dist/build and
// writes the checksums file and the krew manifest beside the archives.
func Release(dist, version, baseURL, license string) error {
	if !semver.MatchString(version) {
		return fmt.Errorf("version %q is not v-prefixed semver (vMAJOR.MINOR.PATCH), which krew requires", version)
	}
	if !strings.HasPrefix(baseURL, "https://") && !strings.HasPrefix(baseURL, "http://") {
		return fmt.Errorf("base URL %q is not an http(s) URL", baseURL)
	}
	if _, err := os.Stat(license); errors.Is(err, fs.ErrNotExist) {
		license = ""
	} else if err != nil {
		return err
	}
	var archives []Archive
	var sums strings.Builder
	for _, p := range Platforms {
		name := ArchiveName(version, p)
		bin := filepath.Join(dist, "build", p.OS+"_"+p.Arch, Binary)
		if err := writeArchive(filepath.Join(dist, name), bin, license); err != nil {
			return fmt.Errorf("archive %s/%s: %w", p.OS, p.Arch, err)
		}
		sum, err := fileSHA256(filepath.Join(dist, name))
		if err != nil {
			return err
		}
		archives = append(archives, Archive{Platform: p, Name: name, SHA256: sum})
		fmt.Fprintf(&sums, "%s  %s\n", sum, name)
	}
	if err := os.WriteFile(filepath.Join(dist, "checksums.txt"), []byte(sums.String()), 0o644); err != nil {
		return err
	}
	manifest, err := Manifest(version, baseURL, archives, license != "")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dist, PluginName+".yaml"), manifest, 0o644)
}

// epoch is the time of every archive entry, so that an archive's bytes
// depend on its files' contents alone.
var epoch = time.Unix(0, 0).UTC()

// writeArchive writes a gzipped tar at out with the binary (mode 0755)
// and, when license is not empty, the license file (0644), both at the
// archive's top.
func writeArchive(out, bin, license string) (err error) {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	add := func(path, name string, mode int64) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), ModTime: epoch,
			Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	}
	if err := add(bin, Binary, 0o755); err != nil {
		return err
	}
	if license != "" {
		if err := add(license, "LICENSE", 0o644); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// The krew manifest's schema (krew.googlecontainertools.github.com/v1alpha2
// Plugin), as far as the plugin uses it.
type (
	plugin struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   metadata   `json:"metadata"`
		Spec       pluginSpec `json:"spec"`
	}
	metadata struct {
		Name string `json:"name"`
	}
	pluginSpec struct {
		Version          string     `json:"version"`
		Homepage         string     `json:"homepage"`
		ShortDescription string     `json:"shortDescription"`
		Description      string     `json:"description"`
		Platforms        []platform `json:"platforms"`
	}
	platform struct {
		Selector selector `json:"selector"`
		URI      string   `json:"uri"`
		SHA256   string   `json:"sha256"`
		Bin      string   `json:"bin"`
		Files    []file   `json:"files"`
	}
	selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	file struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
)

// Manifest is the krew plugin manifest of version: one platform per
// archive, selected by os and arch, downloaded from baseURL/<name> and
// checked against its sha256.
func Manifest(version, baseURL string, archives []Archive, withLicense bool) ([]byte, error) {
	files := []file{{From: Binary, To: "."}}
	if withLicense {
		files = append(files, file{From: "LICENSE", To: "."})
	}
	p := plugin{
		APIVersion: "krew.googlecontainertools.github.com/v1alpha2",
		Kind:       "Plugin",
		Metadata:   metadata{Name: PluginName},
		Spec: pluginSpec{
			Version:          version,
			Homepage:         "https://github.com/slmops/slmops",
			ShortDescription: "Watch and steer slmops rollouts of models to edge nodes",
			Description: "Shows where an slmops EdgeRollout is (phase, step, nodes per site and\n" +
				"hardware class, failing nodes) and steers it: promote, pause, resume,\n" +
				"abort, retry, and the history of its revisions.\n",
		},
	}
	for _, a := range archives {
		if len(a.SHA256) != 64 {
			return nil, fmt.Errorf("archive %s: sha256 %q is not 64 hex digits", a.Name, a.SHA256)
		}
		p.Spec.Platforms = append(p.Spec.Platforms, platform{
			Selector: selector{MatchLabels: map[string]string{"os": a.Platform.OS, "arch": a.Platform.Arch}},
			URI:      strings.TrimSuffix(baseURL, "/") + "/" + a.Name,
			SHA256:   a.SHA256,
			Bin:      Binary,
			Files:    files,
		})
	}
	return yaml.Marshal(p)
}
