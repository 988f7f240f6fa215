package localcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/slmops/slmops/test/skip"
)

// TestProcessKubeletRestartsAPodThatFailsItsLivenessProbe: a process that
// stops answering its liveness probe is stopped and started again in its
// pod, as a kubelet does; while it answers, it is left alone.
func TestProcessKubeletRestartsAPodThatFailsItsLivenessProbe(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	binary := buildProbeProgram(t)
	c, err := Up(ctx, Options{Dir: filepath.Join(t.TempDir(), "cluster"), BinDir: testBinDir(t), Nodes: 1, Sites: 1})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Down() })
	root := t.TempDir()
	node := NodeName(0, 1)
	var log lockedBuffer
	k, err := c.StartProcessKubelet(ctx, ProcessKubeletOptions{
		Name: "liveness", Selector: labels.SelectorFromSet(labels.Set{"app": "alive"}), Binary: binary, Root: root, Log: &log,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_ = k.Stop()
		if t.Failed() {
			t.Logf("process kubelet log:\n%s", log.String())
		}
	})
	// The probe program answers /readyz while this file exists.
	alive := filepath.Join(root, "nodes", node, "hostpath", "srv", "alive", "ready")
	g.Expect(os.MkdirAll(filepath.Dir(alive), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(alive, nil, 0o644)).To(Succeed())

	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
		PeriodSeconds: 1, FailureThreshold: 2}
	pods := c.Clientset.CoreV1().Pods("default")
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "alive", Labels: map[string]string{"app": "alive"}},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "alive", Image: "registry.invalid/probe:1",
				Args: []string{"--data=/var/lib/alive"},
				Env: []corev1.EnvVar{{Name: "READY_FILE", Value: "/var/lib/alive/ready"}, {Name: "POD_NAME", Value: "alive"},
					{Name: "CRASH_FILE", Value: "/var/lib/alive/crash"}},
				Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				LivenessProbe:  probe,
				VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/alive"}},
				ReadinessProbe: probe.DeepCopy(),
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/srv/alive", Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}}},
		},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	restarts := func() (int32, error) {
		got, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || len(got.Status.ContainerStatuses) == 0 {
			return -1, err
		}
		return got.Status.ContainerStatuses[0].RestartCount, nil
	}
	g.Eventually(func() (bool, error) {
		got, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && podReady(got), err
	}).WithTimeout(time.Minute).Should(BeTrue())
	g.Consistently(restarts).WithTimeout(3 * time.Second).Should(BeEquivalentTo(0))

	// It stops answering: after two failed probes it is restarted.
	g.Expect(os.Remove(alive)).To(Succeed())
	g.Eventually(restarts).WithTimeout(30 * time.Second).Should(BeNumerically(">=", 1))
	g.Expect(log.String()).To(ContainSubstring("failed its liveness probe 2 times: restarting it"))
}

func TestOnPodIP(t *testing.T) {
	for arg, want := range map[string]string{
		":8081":                               "127.2.0.9:8081",
		"--health-probe-bind-address=:8081":   "--health-probe-bind-address=127.2.0.9:8081",
		"--metrics-bind-address=0.0.0.0:8443": "--metrics-bind-address=127.2.0.9:8443",
		"--listen=[::]:80":                    "--listen=127.2.0.9:80",
		"--metrics-bind-address=0":            "--metrics-bind-address=0",
		"--listen=10.0.0.1:80":                "--listen=10.0.0.1:80",
		"--url=http://x:80":                   "--url=http://x:80",
		"--ratio=2:1":                         "--ratio=2:1",
	} {
		if got := onPodIP(arg, "127.2.0.9"); got != want {
			t.Errorf("onPodIP(%q) = %q, want %q", arg, got, want)
		}
	}
}

func TestRunAs(t *testing.T) {
	pod := func(sc *corev1.PodSecurityContext, csc *corev1.SecurityContext) (*corev1.Pod, *corev1.Container) {
		p := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: sc, Containers: []corev1.Container{{SecurityContext: csc}}}}
		return p, &p.Spec.Containers[0]
	}
	if cred, err := runAs(pod(nil, nil)); cred != nil || err != nil {
		t.Errorf("no security context: %+v, %v; want the kubelet's own user", cred, err)
	}
	_, err := runAs(pod(&corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}, nil))
	if err == nil || !strings.Contains(err.Error(), "runAsNonRoot") {
		t.Errorf("runAsNonRoot without a user: %v; want a refusal", err)
	}
	_, err = runAs(pod(&corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0)}, &corev1.SecurityContext{RunAsNonRoot: ptr.To(true)}))
	if err == nil {
		t.Error("runAsNonRoot with user 0 was not refused")
	}
	if os.Geteuid() != 0 {
		skip.Because(t, "the process kubelet's switch to a pod's user (runAsUser, runAsGroup): it needs root", "run the tests as root")
	}
	cred, err := runAs(pod(&corev1.PodSecurityContext{RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65533), RunAsNonRoot: ptr.To(true)},
		&corev1.SecurityContext{RunAsNonRoot: ptr.To(true)}))
	if err != nil || cred == nil || cred.Uid != 65532 || cred.Gid != 65533 {
		t.Errorf("runAsUser 65532, runAsGroup 65533: %+v, %v", cred, err)
	}
	cred, err = runAs(pod(&corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)}, &corev1.SecurityContext{RunAsUser: ptr.To[int64](65532)}))
	if err != nil || cred == nil || cred.Uid != 65532 || cred.Gid != 65532 {
		t.Errorf("the container's user over the pod's, its group by default: %+v, %v", cred, err)
	}
}
