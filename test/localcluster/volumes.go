package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
)

// mount is one emulated volume mount: what the container sees at path is in
// the local folder (or file).
type mount struct{ path, local string }

// configMapVolume is a configMap volume and the folder it is written to.
type configMapVolume struct {
	source corev1.ConfigMapVolumeSource
	dir    string
}

// prepareVolumes creates the local folders of the container's volume mounts
// and writes its configMap volumes once.
func (p *podProcess) prepareVolumes(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container) ([]mount, []configMapVolume, []*projectedVolume, error) {
	volumes := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	if err := os.MkdirAll(p.k.nodeDir(p.node), 0o755); err != nil {
		return nil, nil, nil, err
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, nil, nil, err
	}
	var mounts []mount
	var configMaps []configMapVolume
	var projected []*projectedVolume
	for _, vm := range ctr.VolumeMounts {
		v := volumes[vm.Name]
		if v == nil {
			return nil, nil, nil, fmt.Errorf("volumeMount %s names no volume", vm.Name)
		}
		var local string
		switch {
		case v.HostPath != nil:
			local = filepath.Join(p.k.nodeDir(p.node), "hostpath", filepath.Clean("/"+v.HostPath.Path))
			if t := v.HostPath.Type; t != nil && (*t == corev1.HostPathFile || *t == corev1.HostPathFileOrCreate) {
				if err := touch(local); err != nil {
					return nil, nil, nil, err
				}
			} else if err := os.MkdirAll(local, 0o755); err != nil {
				return nil, nil, nil, err
			}
		case v.EmptyDir != nil:
			local = filepath.Join(p.dir, "emptydir", v.Name)
			if err := os.MkdirAll(local, 0o755); err != nil {
				return nil, nil, nil, err
			}
			// Writable by the container's user, whoever it is, as a
			// kubelet makes an emptyDir.
			if err := os.Chmod(local, 0o777); err != nil { //nolint:gosec // as a kubelet does
				return nil, nil, nil, err
			}
		case v.ConfigMap != nil:
			local = filepath.Join(p.dir, "configmap", v.Name)
			if !slices.ContainsFunc(configMaps, func(c configMapVolume) bool { return c.dir == local }) {
				cmv := configMapVolume{source: *v.ConfigMap, dir: local}
				if err := p.writeConfigMap(cmv); err != nil {
					return nil, nil, nil, err
				}
				configMaps = append(configMaps, cmv)
			}
		case v.Projected != nil:
			local = filepath.Join(p.dir, "projected", v.Name)
			if !slices.ContainsFunc(projected, func(pv *projectedVolume) bool { return pv.dir == local }) {
				pv := &projectedVolume{source: *v.Projected, dir: local}
				if err := p.writeProjected(ctx, pod, pv, time.Now()); err != nil {
					return nil, nil, nil, fmt.Errorf("projected volume %s: %w", v.Name, err)
				}
				projected = append(projected, pv)
			}
		default:
			local = filepath.Join(p.dir, "volume", v.Name)
			if _, err := os.Stat(local); errors.Is(err, fs.ErrNotExist) {
				p.k.logf("%s: volume %s is no hostPath, emptyDir or configMap: an empty folder stands in for it", p, v.Name)
			}
			if err := os.MkdirAll(local, 0o755); err != nil {
				return nil, nil, nil, err
			}
		}
		if vm.SubPath != "" {
			local = filepath.Join(local, vm.SubPath)
			if v.ConfigMap == nil && v.Projected == nil {
				if err := os.MkdirAll(local, 0o755); err != nil {
					return nil, nil, nil, err
				}
			}
		}
		if mp := path.Clean(vm.MountPath); mp != "/" {
			mounts = append(mounts, mount{path: mp, local: local})
		}
	}
	slices.SortStableFunc(mounts, func(a, b mount) int { return len(b.path) - len(a.path) })
	return mounts, configMaps, projected, nil
}

func touch(file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// refreshVolumes rewrites the configMap and projected volumes every
// configMapRefresh until ctx ends; a projected token is requested anew
// once it is due (tokenDue). A ConfigMap that went missing keeps its last
// files, as with a kubelet.
func (p *podProcess) refreshVolumes(ctx context.Context, volumes []configMapVolume, projected []*projectedVolume) {
	for sleep(ctx, configMapRefresh) {
		if p.k.nodeOffline(p.node) != nil {
			continue // the node cannot see a change
		}
		for _, v := range volumes {
			if err := p.writeConfigMap(v); err != nil && !apierrors.IsNotFound(err) {
				p.k.logf("%s: refresh configMap volume %s: %v", p, v.source.Name, err)
			}
		}
		for _, v := range projected {
			if err := p.writeProjected(ctx, p.latest.Load(), v, time.Now()); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
				p.k.logf("%s: refresh projected volume %s: %v", p, filepath.Base(v.dir), err)
			}
		}
	}
}

// writeConfigMap writes each key of the volume's ConfigMap (or its items) as a
// file, replacing a changed file atomically, and removes files of keys that
// are gone. A missing optional ConfigMap is an empty folder.
func (p *podProcess) writeConfigMap(v configMapVolume) error {
	files, err := p.configMapFiles(v.source)
	if err != nil {
		return err
	}
	return writeFiles(v.dir, files)
}

// configMapFiles are the files of a configMap volume: each key of its
// ConfigMap, or its items.
func (p *podProcess) configMapFiles(source corev1.ConfigMapVolumeSource) (map[string][]byte, error) {
	optional := ptr.Deref(source.Optional, false)
	files := map[string][]byte{}
	cm, err := p.k.configMaps.ConfigMaps(p.namespace).Get(source.Name)
	switch {
	case apierrors.IsNotFound(err) && optional:
	case err != nil:
		return nil, fmt.Errorf("configmap %s: %w", source.Name, err)
	default:
		value := func(key string) ([]byte, bool) {
			if s, ok := cm.Data[key]; ok {
				return []byte(s), true
			}
			b, ok := cm.BinaryData[key]
			return b, ok
		}
		if len(source.Items) == 0 {
			for key := range cm.Data {
				files[key], _ = value(key)
			}
			for key := range cm.BinaryData {
				files[key], _ = value(key)
			}
		}
		for _, item := range source.Items {
			b, ok := value(item.Key)
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("configmap %s has no key %s", source.Name, item.Key)
			}
			files[item.Path] = b
		}
	}
	return files, nil
}

// writeFiles makes dir hold exactly files (relative path to content). A file
// that changes is written to a temporary file and renamed over the old one, so
// that a reader sees the old or the new content, never a part.
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rel, content := range files {
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("file %q would leave its volume", rel)
		}
		target := filepath.Join(dir, rel)
		if old, err := os.ReadFile(target); err == nil && string(old) == string(content) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(target), ".tmp-")
		if err != nil {
			return err
		}
		_, werr := tmp.Write(content)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644), os.Rename(tmp.Name(), target)); err != nil {
			_ = os.Remove(tmp.Name())
			return err
		}
	}
	return filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			return err
		}
		if _, keep := files[rel]; !keep {
			return os.Remove(file)
		}
		return nil
	})
}

// translate rewrites each mount path that stands as a path of its own in s to
// its local folder, in one pass, so that a local folder is never rewritten
// again. mounts are sorted longest path first.
func translate(s string, mounts []mount) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if m, ok := mountAt(s, i, mounts); ok {
			b.WriteString(m.local)
			i += len(m.path)
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// mountAt is the mount whose path starts at s[i] and ends at a path boundary:
// "/data" in "x=/data/y" and in "file:///data", not in "/database" or "/var/data".
func mountAt(s string, i int, mounts []mount) (mount, bool) {
	if s[i] != '/' || (i > 0 && pathByte(s[i-1]) && !strings.HasSuffix(s[:i], "://")) {
		return mount{}, false
	}
	for _, m := range mounts {
		if !strings.HasPrefix(s[i:], m.path) {
			continue
		}
		if end := i + len(m.path); end == len(s) || s[end] == '/' || !pathByte(s[end]) {
			return m, true
		}
	}
	return mount{}, false
}

// pathByte reports whether c can be part of a file name or path.
func pathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/~+@", c) >= 0
}
