package localcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// secretsDir is where a kubelet puts service account tokens: a path that
// clients compile in (client-go's rest.InClusterConfig reads
// /var/run/secrets/kubernetes.io/serviceaccount/token), so path translation
// cannot reach it.
const secretsDir = "/run/secrets"

// privateMountScript runs a process in a mount namespace of its own (the
// child unshares it, and Go makes / private there) where /run is an overlay
// of the machine's /run, so that nothing changes outside, and each mount
// under /run/secrets is bound to its local folder: a process that opens the
// compiled-in path finds its pod's token. Arguments: the overlay's upper and
// work folders, pairs of local folder and mount path, "--", the command.
const privateMountScript = `set -e
upper=$1 work=$2
shift 2
mount -t overlay slmops-run -o "lowerdir=/run,upperdir=$upper,workdir=$work" /run
while [ "$1" != -- ]; do
	mkdir -p "$2"
	mount --bind "$1" "$2"
	shift 2
done
shift
exec "$@"`

// secretMounts are the mounts under /run/secrets (or /var/run/secrets,
// its usual alias), with their paths under /run.
func secretMounts(mounts []mount) []mount {
	var out []mount
	for _, m := range mounts {
		p := m.path
		if rest, ok := strings.CutPrefix(p, "/var/run/"); ok {
			p = "/run/" + rest
		}
		if p == secretsDir || strings.HasPrefix(p, secretsDir+"/") {
			out = append(out, mount{path: path.Clean(p), local: m.local})
		}
	}
	return out
}

// privateMounts reports, once per test binary, whether processes can get a
// mount namespace with the overlay and binds (root, a shell, mount(8),
// overlayfs, and /var/run the alias of /run), and why not.
var privateMounts = sync.OnceValues(func() (string, error) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("mount"); err != nil {
		return "", err
	}
	target, err := filepath.EvalSymlinks("/var/run")
	if err != nil {
		return "", err
	}
	if target != "/run" {
		return "", fmt.Errorf("/var/run is %s, not an alias of /run", target)
	}
	dir, err := os.MkdirTemp("", "slmops-private-mounts-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	for _, sub := range []string{"upper", "work", "token"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "token", "token"), []byte("ok"), 0o644); err != nil {
		return "", err
	}
	cmd := privateMountCommand(sh, filepath.Join(dir, "upper"), filepath.Join(dir, "work"),
		[]mount{{path: secretsDir + "/probe", local: filepath.Join(dir, "token")}}, nil, "cat", "/var/run/secrets/probe/token")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("a trial in a private mount namespace: %w: %s", err, out)
	}
	if string(out) != "ok" {
		return "", fmt.Errorf("a trial in a private mount namespace read %q, not the token", out)
	}
	return sh, nil
})

// privateMountCommand is name with args run in a mount namespace of its own
// with binds (see privateMountScript).
// A process with a user of its own drops root after the mounts, through
// util-linux's setpriv.
func privateMountCommand(sh, upper, work string, binds []mount, user *syscall.Credential, name string, args ...string) *exec.Cmd {
	argv := []string{"-c", privateMountScript, "slmops-private-mounts", upper, work}
	for _, b := range binds {
		argv = append(argv, b.local, b.path)
	}
	argv = append(argv, "--")
	if user != nil {
		argv = append(argv, "setpriv", fmt.Sprintf("--reuid=%d", user.Uid), fmt.Sprintf("--regid=%d", user.Gid), "--clear-groups", "--")
	}
	argv = append(argv, name)
	cmd := exec.Command(sh, append(argv, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	return cmd
}

// overlayFolders makes fresh upper and work folders for a process's /run
// overlay in dir.
func overlayFolders(dir string) (upper, work string, err error) {
	base := filepath.Join(dir, "run-overlay")
	if err := os.RemoveAll(base); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", "", err
	}
	upper, work = filepath.Join(base, "upper"), filepath.Join(base, "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", err
		}
	}
	return upper, work, nil
}
