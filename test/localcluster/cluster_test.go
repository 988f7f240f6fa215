package localcluster

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testBinDir(t *testing.T) string {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestUpIsIdempotentAndDownStopsEverything is the contract of make cluster-up and
// make cluster-down: a second Up reuses the running control plane and only
// changes the node count; Down stops every process and removes the state.
func TestUpIsIdempotentAndDownStopsEverything(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	opts := Options{Dir: filepath.Join(t.TempDir(), "cluster"), BinDir: testBinDir(t), Nodes: 6, Sites: 2}
	c, err := Up(ctx, opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Down() })
	g.Expect(c.state.Components).To(HaveLen(5))
	for _, comp := range c.state.Components {
		g.Expect(comp.alive()).To(BeTrue(), comp.Name)
	}
	// The kubeconfig verifies the API server against the cluster's own CA.
	g.Expect(c.Config.TLSClientConfig.Insecure).To(BeFalse())
	g.Expect(c.Config.TLSClientConfig.CAData).NotTo(BeEmpty())

	// A marker object survives a second Up: the control plane was reused, not replaced.
	marker, err := c.Clientset.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "reuse-marker"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	var progress bytes.Buffer
	opts.Nodes, opts.Progress = 3, &progress
	again, err := Up(ctx, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(progress.String()).To(ContainSubstring("Reusing the control plane"))
	g.Expect(again.state.Components).To(Equal(c.state.Components))
	got, err := again.Clientset.CoreV1().Namespaces().Get(ctx, marker.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.UID).To(Equal(marker.UID))
	nodes, err := again.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(nodes.Items).To(HaveLen(3))

	// Down finds the processes even when the state file is lost: a stale or
	// missing pid record must not leak a control plane.
	g.Expect(os.Remove(statePath(opts.Dir))).To(Succeed())
	g.Expect(Down(opts.Dir, nil)).To(Succeed())
	for _, comp := range c.state.Components {
		g.Expect(comp.alive()).To(BeFalse(), "%s still runs after Down", comp.Name)
	}
	g.Expect(opts.Dir).NotTo(BeADirectory())
	// Down on a stopped cluster is a no-op.
	g.Expect(Down(opts.Dir, nil)).To(Succeed())
}

// TestUpCleansUpAfterAFailedComponent: when a component cannot start, Up says
// which one and why, and stops the components it had already started.
func TestUpCleansUpAfterAFailedComponent(t *testing.T) {
	g := NewWithT(t)
	real := testBinDir(t)
	bin := t.TempDir()
	for _, name := range []string{etcdName, controllerName, schedulerName, kwokName, "kwok-stages-crd.yaml"} {
		g.Expect(os.Symlink(filepath.Join(real, name), filepath.Join(bin, name))).To(Succeed())
	}
	// An API server that refuses to start, as one with a bad flag would.
	g.Expect(os.WriteFile(filepath.Join(bin, apiServerName),
		[]byte("#!/bin/sh\necho 'E1128 simulated: unknown flag --typo' >&2\nexit 3\n"), 0o755)).To(Succeed())

	dir := filepath.Join(t.TempDir(), "cluster")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var progress bytes.Buffer
	_, err := Up(ctx, Options{Dir: dir, BinDir: bin, Nodes: 1, Sites: 1, Progress: &progress})
	g.Expect(err).To(MatchError(And(
		ContainSubstring("kube-apiserver exited"),
		ContainSubstring("unknown flag --typo"),
	)))
	g.Expect(progress.String()).To(ContainSubstring("stopped etcd"))
	g.Expect(dir).NotTo(BeADirectory())
}

// TestUpNamesMissingBinaries: a fresh clone without bin/k8s gets told what to run.
func TestUpNamesMissingBinaries(t *testing.T) {
	_, err := Up(context.Background(), Options{Dir: t.TempDir(), BinDir: t.TempDir(), Nodes: 1})
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring("run hack/build-controlplane.sh")))
}

// TestTrackedProcessesStopWithTheCluster: a process tracked beside the
// control plane (the detached process kubelet of make cluster-up) is
// stopped by StopProcess and by Down, and one that died does not make Up
// start the control plane anew.
func TestTrackedProcessesStopWithTheCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	opts := Options{Dir: filepath.Join(t.TempDir(), "cluster"), BinDir: testBinDir(t), Nodes: 1, Sites: 1}
	c, err := Up(ctx, opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Down() })
	sleeper := func() *exec.Cmd {
		cmd := exec.Command("sleep", "300")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		g.Expect(cmd.Start()).To(Succeed())
		go func() { _ = cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		return cmd
	}
	g.Expect(c.TrackProcess(apiServerName, os.Getpid())).NotTo(Succeed(), "a control plane name")

	first := sleeper()
	g.Expect(c.TrackProcess("helper", first.Process.Pid)).To(Succeed())
	g.Expect(c.StopProcess("helper")).To(Succeed())
	g.Eventually(func() bool { return processAlive(first.Process.Pid) }).WithTimeout(15 * time.Second).Should(BeFalse())
	g.Expect(c.state.Components).To(HaveLen(5))

	// Killed behind the cluster's back, it is dropped on the next Up.
	second := sleeper()
	g.Expect(c.TrackProcess("helper", second.Process.Pid)).To(Succeed())
	g.Expect(syscall.Kill(second.Process.Pid, syscall.SIGKILL)).To(Succeed())
	g.Eventually(func() bool { return processAlive(second.Process.Pid) }).WithTimeout(15 * time.Second).Should(BeFalse())
	var progress bytes.Buffer
	opts.Progress = &progress
	again, err := Up(ctx, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(progress.String()).To(ContainSubstring("Reusing the control plane"))
	g.Expect(again.state.Components).To(Equal(c.state.Components[:5]))

	third := sleeper()
	g.Expect(again.TrackProcess("helper", third.Process.Pid)).To(Succeed())
	g.Expect(Down(opts.Dir, nil)).To(Succeed())
	g.Eventually(func() bool { return processAlive(third.Process.Pid) }).WithTimeout(15 * time.Second).Should(BeFalse())
}
