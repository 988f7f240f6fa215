// Package image checks the container images as far as a machine without a
// Docker engine can: the Dockerfile, read by buildkit's own parser, follows
// the rules the images must keep (multi-stage, static binaries built for the
// target platform, distroless or scratch, a numeric non-root user, exec-form
// entrypoints), and the two binaries cross-compile, statically linked, for
// linux/amd64 and linux/arm64.
//
// What it owns: the checks of the images. What it may not touch: a Docker
// engine or registry (there is none here); it says so rather than pretend
// to build an image.
package image

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/slmops/slmops/test/skip"
	"github.com/slmops/slmops/test/testenv"
)

// binaries are the images' programs, by Dockerfile target.
var binaries = map[string]string{"manager": "./cmd/manager", "inferd": "./cmd/inferd"}

func parseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	f, err := os.Open(filepath.Join(testenv.RepoRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("the Dockerfile does not parse: %v", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("the Dockerfile's instructions do not parse: %v", err)
	}
	return stages
}

func TestDockerfileRules(t *testing.T) {
	stages := parseDockerfile(t)
	byName := map[string]instructions.Stage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	build, ok := byName["build"]
	if !ok {
		t.Fatal("no build stage")
	}
	// The build stage runs on the builder's platform and cross-compiles
	// for the target's: fast multi-arch builds, no emulation.
	if build.Platform != "$BUILDPLATFORM" {
		t.Errorf("the build stage's platform is %q; want $BUILDPLATFORM", build.Platform)
	}
	var args []string
	var runs []string
	for _, cmd := range build.Commands {
		switch c := cmd.(type) {
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				args = append(args, a.Key)
			}
		case *instructions.RunCommand:
			runs = append(runs, strings.Join(c.CmdLine, " "))
		}
	}
	for _, want := range []string{"TARGETOS", "TARGETARCH"} {
		if !slices.Contains(args, want) {
			t.Errorf("the build stage has no ARG %s", want)
		}
	}
	goBuild := regexp.MustCompile(`CGO_ENABLED=0 GOOS=\$TARGETOS GOARCH=\$TARGETARCH\s+go build [^&]*-o /out/(\w+) (\./cmd/\w+)`)
	built := map[string]string{}
	for _, r := range runs {
		for _, m := range goBuild.FindAllStringSubmatch(r, -1) {
			built[m[1]] = m[2]
		}
	}
	for name, pkg := range binaries {
		if built[name] != pkg {
			t.Errorf("the build stage does not build %s from %s with CGO_ENABLED=0 for $TARGETOS/$TARGETARCH (builds %v)", name, pkg, built)
		}
	}

	for name := range binaries {
		s, ok := byName[name]
		if !ok {
			t.Errorf("no %s target", name)
			continue
		}
		if !strings.HasPrefix(s.BaseName, "gcr.io/distroless/static") && s.BaseName != "scratch" {
			t.Errorf("target %s is based on %s; want distroless/static or scratch", name, s.BaseName)
		}
		var user string
		var entrypoint *instructions.EntrypointCommand
		for _, cmd := range s.Commands {
			switch c := cmd.(type) {
			case *instructions.UserCommand:
				user = c.User
			case *instructions.EntrypointCommand:
				entrypoint = c
			case *instructions.CopyCommand:
				if c.From != "build" {
					t.Errorf("target %s copies from %q; want only the build stage's binary", name, c.From)
				}
			case *instructions.RunCommand:
				t.Errorf("target %s runs %v; the final stage has no shell", name, c.CmdLine)
			}
		}
		// Numeric, so that the kubelet's runAsNonRoot can verify it.
		if !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(user) {
			t.Errorf("target %s runs as user %q; want a numeric non-root UID[:GID]", name, user)
		}
		// PrependShell is false for the exec form.
		if entrypoint == nil || entrypoint.PrependShell || !slices.Equal(entrypoint.CmdLine, []string{"/" + name}) {
			t.Errorf("target %s's ENTRYPOINT is not [\"/%s\"] in exec form", name, name)
		}
	}
}

// TestBinariesCrossCompileStatically builds the images' binaries as the
// Dockerfile does, for both architectures, and reads their ELF headers.
func TestBinariesCrossCompileStatically(t *testing.T) {
	if testing.Short() {
		skip.Because(t, "cross-compiling the binaries for amd64 and arm64 (-short)", "go test without -short (make test)")
	}
	dir := t.TempDir()
	for _, arch := range []struct {
		goarch  string
		machine elf.Machine
	}{{"amd64", elf.EM_X86_64}, {"arm64", elf.EM_AARCH64}} {
		for name, pkg := range binaries {
			out := filepath.Join(dir, name+"-"+arch.goarch)
			// Without the Dockerfile's -trimpath and -ldflags, which do not
			// change the linking, so the amd64 builds reuse the build cache.
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = testenv.RepoRoot()
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch.goarch)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s for linux/%s does not build: %v\n%s", name, arch.goarch, err, b)
				continue
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != arch.machine {
				t.Errorf("%s for %s is a %s binary", name, arch.goarch, f.Machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
					t.Errorf("%s for %s is dynamically linked (%s)", name, arch.goarch, p.Type)
				}
			}
			f.Close()
		}
	}
}
