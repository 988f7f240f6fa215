package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
)

// probeProgram stands in for inferd: it reports what it sees (its env, args,
// the size of its data folder's file system) in a file in that folder, serves
// /readyz once READY_FILE exists and /config from its configMap file, and
// exits 3 with a termination message when CRASH_FILE appears.
const probeProgram = `package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to serve on")
	termLog := flag.String("termination-log", "", "file for the termination message")
	data := flag.String("data", "", "a folder on the node")
	config := flag.String("config", "", "a file of a configMap volume")
	flag.Parse()
	node := os.Getenv("NODE_NAME")
	var st syscall.Statfs_t
	if err := syscall.Statfs(*data, &st); err != nil {
		log.Fatal(err)
	}
	missing, ok := os.LookupEnv("MISSING")
	if !ok {
		missing = "<unset>"
	}
	report := fmt.Sprintf("pid=%d\nnode=%s\npodIP=%s\nlisten=%s\ndata=%s\nsecret=%s\nmissing=%s\njson=%s\ntmpdir=%s\ndiskBytes=%d\ngomaxprocs=%d\n",
		os.Getpid(), node, os.Getenv("POD_IP"), *listen, *data, os.Getenv("SECRET"), missing, os.Getenv("JSON"),
		os.TempDir(), int64(st.Blocks)*int64(st.Bsize), runtime.GOMAXPROCS(0))
	if err := os.WriteFile(filepath.Join(*data, "seen-"+os.Getenv("POD_NAME")), []byte(report), 0o644); err != nil {
		log.Fatal(err)
	}
	go func() {
		for range time.Tick(50 * time.Millisecond) {
			if os.Remove(os.Getenv("CRASH_FILE")) == nil {
				_ = os.WriteFile(*termLog, []byte("crash requested on "+node+"\n"), 0o644)
				os.Exit(3)
			}
		}
	}()
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(os.Getenv("READY_FILE")); err != nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// /whoami asks the API server who the projected token is, as a client
	// in a pod does: KUBERNETES_SERVICE_HOST/PORT, and TOKEN_DIR's token,
	// ca.crt and namespace.
	http.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		// ?dir= names a folder that no env or arg carries: one compiled in.
		dir := os.Getenv("TOKEN_DIR")
		if d := r.URL.Query().Get("dir"); d != "" {
			dir = d
		}
		token, err := os.ReadFile(filepath.Join(dir, "token"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		ns, _ := os.ReadFile(filepath.Join(dir, "namespace"))
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		url := "https://" + net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")) +
			"/apis/authentication.k8s.io/v1/selfsubjectreviews"
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(` + "`" + `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}` + "`" + `))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("X-Namespace", string(ns))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	http.HandleFunc("/config", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(*config)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
`

func buildProbeProgram(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(probeProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.Command(goTool, "build", "-o", "probe", "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the probe program: %v\n%s", err, out)
	}
	return filepath.Join(dir, "probe")
}

// lockedBuffer is the harness's log, written by many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// readReport parses what the probe program of pod wrote on its node.
func readReport(root string, pod *corev1.Pod) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "nodes", pod.Spec.NodeName, "hostpath", "srv", "probe", "seen-"+pod.Name))
	if err != nil {
		return nil, err
	}
	report := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		key, value, _ := strings.Cut(line, "=")
		report[key] = value
	}
	return report, nil
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func processAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func httpGet(url string) (int, string, error) {
	resp, err := (&http.Client{Timeout: time.Second}).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestProcessKubeletRunsSelectedPodsAsProcesses: the pods of a DaemonSet that
// the selector picks run as real processes, one per simulated node, on their
// own loopback IPs, with their volumes emulated; readiness, configMap updates,
// crashes and deletion behave as with a kubelet; other pods stay kwok's.
func TestProcessKubeletRunsSelectedPodsAsProcesses(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	binary := buildProbeProgram(t)
	const nodes, diskBytes, ns = 3, 8 << 20, "default"
	c, err := Up(ctx, Options{Dir: filepath.Join(t.TempDir(), "cluster"), BinDir: testBinDir(t), Nodes: nodes, Sites: 1})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Down() })
	cs := c.Clientset

	root := t.TempDir()
	small := NodeName(1, 1)
	selector, err := labels.Parse("slmops.dev/run-as-process")
	g.Expect(err).NotTo(HaveOccurred())
	var log lockedBuffer
	k, err := c.StartProcessKubelet(ctx, ProcessKubeletOptions{
		Name: "test", Selector: selector, Binary: binary, Root: root,
		NodeDiskBytes: map[string]int64{small: diskBytes}, Log: &log,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_ = k.Stop()
		t.Logf("process kubelet log:\n%s", log.String())
	})

	_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "probe-secret"}, StringData: map[string]string{"token": "s3cr3t"},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	podLabels := map[string]string{"app": "probe", "slmops.dev/run-as-process": "yes"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "probe", Image: "registry.invalid/probe:1",
						Command: []string{"/ignored"},
						Args:    []string{"--data=/var/lib/probe", "--config=/etc/probe/greeting"},
						Env: []corev1.EnvVar{
							{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
							{Name: "SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "probe-secret"}, Key: "token"}}},
							{Name: "MISSING", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "no-such-secret"}, Key: "token", Optional: ptr.To(true)}}},
							// A path inside JSON, as inferd's config carries its cache folder.
							{Name: "JSON", Value: `{"cacheDir":"/var/lib/probe","other":"/var/lib/probex"}`},
							{Name: "READY_FILE", Value: "/var/lib/probe/ready"},
							{Name: "CRASH_FILE", Value: "/var/lib/probe/crash"},
						},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
							HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")},
						}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "data", MountPath: "/var/lib/probe"},
							{Name: "config", MountPath: "/etc/probe"},
							{Name: "tmp", MountPath: "/tmp"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
							Path: "/srv/probe", Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}},
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: "probe-config"}, Optional: ptr.To(true)}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
	// Every status the pods ever had, to tell that kwok never made them Ready.
	var seen struct {
		sync.Mutex
		ready, foreignIPs []string
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=probe"})
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok {
				seen.Lock()
				if podReady(pod) {
					seen.ready = append(seen.ready, pod.Name)
				}
				if ip := pod.Status.PodIP; ip != "" && !strings.HasPrefix(ip, "127.2.") {
					seen.foreignIPs = append(seen.foreignIPs, pod.Name+" "+ip)
				}
				seen.Unlock()
			}
		}
	}()
	_, err = cs.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	probePods := func(g Gomega) map[string]*corev1.Pod {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=probe"})
		g.Expect(err).NotTo(HaveOccurred())
		byNode := map[string]*corev1.Pod{}
		for i := range list.Items {
			if pod := &list.Items[i]; pod.DeletionTimestamp == nil {
				byNode[pod.Spec.NodeName] = pod
			}
		}
		return byNode
	}
	hostPath := func(node string, elem ...string) string {
		return filepath.Join(append([]string{root, "nodes", node, "hostpath", "srv", "probe"}, elem...)...)
	}

	// Every node runs one process, on its own loopback IP; without the ready
	// file it is running but not Ready.
	var pods map[string]*corev1.Pod
	g.Eventually(func(g Gomega) {
		pods = probePods(g)
		g.Expect(pods).To(HaveLen(nodes))
		for _, pod := range pods {
			g.Expect(pod.Status.PodIP).NotTo(BeEmpty(), pod.Name)
			g.Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
			g.Expect(pod.Status.ContainerStatuses[0].State.Running).NotTo(BeNil(), pod.Name)
		}
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	usedIPs := map[string]bool{}
	for node, pod := range pods {
		g.Expect(pod.Status.PodIP).To(MatchRegexp(`^127\.2\.\d{1,3}\.\d{1,3}$`))
		g.Expect(pod.Status.PodIPs).To(Equal([]corev1.PodIP{{IP: pod.Status.PodIP}}))
		g.Expect(pod.Status.HostIP).NotTo(BeEmpty())
		g.Expect(usedIPs).NotTo(HaveKey(pod.Status.PodIP), "pod IP used twice")
		usedIPs[pod.Status.PodIP] = true
		g.Expect(podReady(pod)).To(BeFalse(), "%s is Ready before its readiness probe passes", pod.Name)

		// The process saw the pod's paths, rewritten to the emulated mounts.
		var report map[string]string
		g.Eventually(func() error { report, err = readReport(root, pod); return err }).Should(Succeed())
		tmp := filepath.Join(root, "pods", string(pod.UID), "emptydir", "tmp")
		g.Expect(report).To(HaveKeyWithValue("node", node))
		g.Expect(report).To(HaveKeyWithValue("podIP", pod.Status.PodIP))
		g.Expect(report).To(HaveKeyWithValue("listen", pod.Status.PodIP+":8080"))
		g.Expect(report).To(HaveKeyWithValue("data", hostPath(node)))
		g.Expect(report).To(HaveKeyWithValue("json", fmt.Sprintf(`{"cacheDir":%q,"other":"/var/lib/probex"}`, hostPath(node))))
		g.Expect(report).To(HaveKeyWithValue("tmpdir", tmp))
		g.Expect(report).To(HaveKeyWithValue("secret", "s3cr3t"))
		g.Expect(report).To(HaveKeyWithValue("missing", "<unset>"))
		// The node with a small disk has one.
		if node == small {
			g.Expect(report).To(HaveKeyWithValue("diskBytes", fmt.Sprint(diskBytes)))
		} else {
			g.Expect(report).NotTo(HaveKeyWithValue("diskBytes", fmt.Sprint(diskBytes)))
		}
	}
	g.Expect(k.Started()).To(Equal(nodes))
	seen.Lock()
	g.Expect(seen.ready).To(BeEmpty(), "pods were Ready before their readiness probe passed")
	seen.Unlock()

	// The readiness probe drives Ready, and the DaemonSet counts it.
	for node := range pods {
		g.Expect(os.WriteFile(hostPath(node, "ready"), nil, 0o644)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		for _, pod := range probePods(g) {
			g.Expect(podReady(pod)).To(BeTrue(), pod.Name)
			g.Expect(pod.Status.ContainerStatuses[0].Ready).To(BeTrue(), pod.Name)
		}
		got, err := cs.AppsV1().DaemonSets(ns).Get(ctx, ds.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Status.NumberReady).To(BeEquivalentTo(nodes))
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// A late write of kwok's hand-over status (a job it queued for an older
	// version of the pod) is undone: the harness reports its status again.
	overwritten := pods[NodeName(0, 1)]
	_, err = cs.CoreV1().Pods(ns).Patch(ctx, overwritten.Name, types.StrategicMergePatchType, []byte(`{"status":{
		"conditions":[{"type":"Ready","status":"False"},{"type":"ContainersReady","status":"False"}],
		"containerStatuses":[{"name":"probe","image":"registry.invalid/probe:1","ready":false,"restartCount":0,"state":{"waiting":{"reason":"ContainerCreating"}}}]}}`),
		metav1.PatchOptions{}, "status")
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		got, err := cs.CoreV1().Pods(ns).Get(ctx, overwritten.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(podReady(got)).To(BeTrue())
		g.Expect(got.Status.ContainerStatuses[0].State.Running).NotTo(BeNil())
	}).WithTimeout(5 * time.Second).Should(Succeed())

	// A pod the selector does not pick is kwok's: Ready at once, with no process.
	plain, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "plain", Labels: map[string]string{"app": "plain"}},
		Spec:       corev1.PodSpec{NodeName: NodeName(0, 1), Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/plain:1"}}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		got, err := cs.CoreV1().Pods(ns).Get(ctx, plain.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(podReady(got)).To(BeTrue())
		g.Expect(got.Status.PodIP).NotTo(HavePrefix("127.2."))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	g.Expect(k.Started()).To(Equal(nodes))
	g.Expect(filepath.Join(root, "pods", string(plain.UID))).NotTo(BeADirectory())

	// The optional ConfigMap is missing: an empty folder. Once created, and
	// again once updated, every process reads the new key within seconds.
	configOf := func(g Gomega, pod *corev1.Pod) (int, string) {
		code, body, err := httpGet("http://" + pod.Status.PodIP + ":8080/config")
		g.Expect(err).NotTo(HaveOccurred())
		return code, body
	}
	for _, pod := range pods {
		code, _ := configOf(g, pod)
		g.Expect(code).To(Equal(http.StatusNotFound), "%s reads a ConfigMap that does not exist", pod.Name)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "probe-config"}, Data: map[string]string{"greeting": "hello"},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	for _, greeting := range []string{"hello", "bonjour"} {
		if greeting != cm.Data["greeting"] {
			cm.Data["greeting"] = greeting
			cm, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
		}
		g.Eventually(func(g Gomega) {
			for _, pod := range pods {
				code, body := configOf(g, pod)
				g.Expect(code).To(Equal(http.StatusOK))
				g.Expect(body).To(Equal(greeting))
			}
		}).WithTimeout(5 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	}

	// A process that exits is restarted; the pod reports the exit with the
	// process's termination message, keeps its IP, and turns Ready again.
	crashing := pods[NodeName(0, 1)]
	g.Expect(os.WriteFile(hostPath(crashing.Spec.NodeName, "crash"), nil, 0o644)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got, err := cs.CoreV1().Pods(ns).Get(ctx, crashing.Name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		status := got.Status.ContainerStatuses[0]
		g.Expect(status.RestartCount).To(BeNumerically(">=", 1))
		g.Expect(status.LastTerminationState.Terminated).NotTo(BeNil())
		g.Expect(status.LastTerminationState.Terminated.ExitCode).To(BeEquivalentTo(3))
		g.Expect(status.LastTerminationState.Terminated.Reason).To(Equal("Error"))
		g.Expect(status.LastTerminationState.Terminated.Message).To(Equal("crash requested on " + crashing.Spec.NodeName))
		g.Expect(status.State.Running).NotTo(BeNil())
		g.Expect(podReady(got)).To(BeTrue())
		g.Expect(got.Status.PodIP).To(Equal(crashing.Status.PodIP))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	g.Expect(k.Started()).To(Equal(nodes + 1))
	g.Expect(log.String()).To(ContainSubstring("exited with code 3"))

	// Deleting a pod stops its process; the DaemonSet's new pod gets a new IP.
	deleted := pods[NodeName(2, 1)]
	report, err := readReport(root, deleted)
	g.Expect(err).NotTo(HaveOccurred())
	var pid int
	_, err = fmt.Sscan(report["pid"], &pid)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(processAlive(pid)).To(BeTrue())
	g.Expect(cs.CoreV1().Pods(ns).Delete(ctx, deleted.Name, metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(func() bool { return processAlive(pid) }).WithTimeout(10 * time.Second).Should(BeFalse())
	_, _, err = httpGet("http://" + deleted.Status.PodIP + ":8080/readyz")
	g.Expect(err).To(HaveOccurred(), "the deleted pod's process still serves")
	g.Eventually(func(g Gomega) {
		pod := probePods(g)[deleted.Spec.NodeName]
		g.Expect(pod).NotTo(BeNil())
		g.Expect(pod.UID).NotTo(Equal(deleted.UID))
		g.Expect(podReady(pod)).To(BeTrue())
		g.Expect(usedIPs).NotTo(HaveKey(pod.Status.PodIP), "a pod IP was reused")
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(k.Started()).To(Equal(nodes + 2))
	seen.Lock()
	g.Expect(seen.foreignIPs).To(BeEmpty(), "pods had an IP that kwok gave")
	seen.Unlock()

	// Stop ends every process, unmounts the small disk and gives the pods back
	// to kwok.
	var pids []int
	for _, pod := range probePods(g) {
		report, err := readReport(root, pod)
		g.Expect(err).NotTo(HaveOccurred())
		var pid int
		_, err = fmt.Sscan(report["pid"], &pid)
		g.Expect(err).NotTo(HaveOccurred())
		pids = append(pids, pid)
	}
	g.Expect(k.Stop()).To(Succeed())
	for _, pid := range pids {
		g.Expect(processAlive(pid)).To(BeFalse(), "pid %d outlived Stop", pid)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(mounts)).NotTo(ContainSubstring(filepath.Join(root, "nodes", small)))
	dc, err := dynamic.NewForConfig(c.Config)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = dc.Resource(stageGVR).Get(ctx, "slmops-processes-test", metav1.GetOptions{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the kwok Stage outlived Stop: %v", err)
	g.Expect(k.Stop()).To(Succeed())
}

func TestProcessKubeletStageSelector(t *testing.T) {
	base := []any{
		map[string]any{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
		map[string]any{"key": ".status.phase", "operator": "In", "values": []any{"Pending"}},
	}
	for name, tc := range map[string]struct {
		selector string
		nodes    []string
		want     []any
		err      string
	}{
		"the pods of chosen nodes, with a label": {
			selector: "app.kubernetes.io/component=model-server",
			nodes:    []string{"edge-02-0002", "edge-01-0001"},
			want: slices.Concat(base, []any{
				map[string]any{"key": ".spec.nodeName", "operator": "In", "values": []any{"edge-01-0001", "edge-02-0002"}},
				map[string]any{"key": `.metadata.labels["app.kubernetes.io/component"]`, "operator": "In", "values": []any{"model-server"}},
			}),
		},
		"every pod of chosen nodes": {
			nodes: []string{"edge-01-0001"},
			want:  slices.Concat(base, []any{map[string]any{"key": ".spec.nodeName", "operator": "In", "values": []any{"edge-01-0001"}}}),
		},
		"a label that exists": {
			selector: "slmops.dev/stage-revision",
			want:     slices.Concat(base, []any{map[string]any{"key": `.metadata.labels["slmops.dev/stage-revision"]`, "operator": "Exists"}}),
		},
		"a label with a value and one of several": {
			selector: "app=inferd,tier in (b,a)",
			want: slices.Concat(base, []any{
				map[string]any{"key": `.metadata.labels["app"]`, "operator": "In", "values": []any{"inferd"}},
				map[string]any{"key": `.metadata.labels["tier"]`, "operator": "In", "values": []any{"a", "b"}},
			}),
		},
		"an empty selector would take every pod": {selector: "", err: "empty"},
		"a negation has no kwok equivalent":      {selector: "app!=inferd", err: "no kwok equivalent"},
		"an absent label has no kwok equivalent": {selector: "!app", err: "no kwok equivalent"},
	} {
		t.Run(name, func(t *testing.T) {
			sel, err := labels.Parse(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			got, err := stageSelector(sel, tc.nodes)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("stageSelector(%q) error = %v, want one that says %q", tc.selector, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("stageSelector(%q) (-want +got):\n%s", tc.selector, diff)
			}
		})
	}
}

// TestProcessKubeletHoldsOfflineNodes: while a node is offline, the process
// kubelet plays a kubelet that cannot reach the API server. A pod deleted
// meanwhile keeps its process until the node returns, a pod created meanwhile
// starts only then, and a pod that lives through it keeps its process and is
// Ready again; a node that stays online is not held.
func TestProcessKubeletHoldsOfflineNodes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	binary := buildProbeProgram(t)
	const ns = "default"
	c, err := Up(ctx, Options{Dir: filepath.Join(t.TempDir(), "cluster"), BinDir: testBinDir(t), Nodes: 2, Sites: 1})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Down() })
	cs := c.Clientset

	root := t.TempDir()
	away, online := NodeName(0, 1), NodeName(1, 1)
	selector, err := labels.Parse("slmops.dev/run-as-process")
	g.Expect(err).NotTo(HaveOccurred())
	var log lockedBuffer
	k, err := c.StartProcessKubelet(ctx, ProcessKubeletOptions{Name: "offline", Selector: selector, Binary: binary, Root: root, Log: &log})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_ = k.Stop()
		t.Logf("process kubelet log:\n%s", log.String())
	})
	for _, node := range []string{away, online} {
		dir := filepath.Join(root, "nodes", node, "hostpath", "srv", "probe")
		g.Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		g.Expect(os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644)).To(Succeed())
	}

	create := func(name, node string) *corev1.Pod {
		t.Helper()
		pod, err := cs.CoreV1().Pods(ns).Create(ctx, probePod(name, node), metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return pod
	}
	get := func(g Gomega, name string) *corev1.Pod {
		pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return pod
	}
	pidOf := func(g Gomega, pod *corev1.Pod) int {
		report, err := readReport(root, pod)
		g.Expect(err).NotTo(HaveOccurred())
		var pid int
		_, err = fmt.Sscan(report["pid"], &pid)
		g.Expect(err).NotTo(HaveOccurred())
		return pid
	}
	runningReady := func(name string) (pod *corev1.Pod, pid int) {
		t.Helper()
		g.Eventually(func(g Gomega) {
			pod = get(g, name)
			g.Expect(pod.Status.PodIP).To(HavePrefix("127.2."))
			g.Expect(podReady(pod)).To(BeTrue())
			pid = pidOf(g, pod)
			g.Expect(processAlive(pid)).To(BeTrue())
		}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		return pod, pid
	}

	kept := create("kept", away)
	stays := create("stays", away)
	other := create("other", online)
	_, keptPID := runningReady(kept.Name)
	_, staysPID := runningReady(stays.Name)
	_, otherPID := runningReady(other.Name)
	g.Expect(k.Started()).To(Equal(3))

	g.Expect(c.SetNodeOffline(ctx, away, true)).To(Succeed())
	g.Eventually(log.String).WithTimeout(10 * time.Second).Should(ContainSubstring("node " + away + " is offline"))
	g.Eventually(func(g Gomega) {
		n, err := cs.CoreV1().Nodes().Get(ctx, away, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(NodeReady(n)).To(BeFalse())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Deleted while its node is offline, the pod object goes (kwok's delete
	// stage) but its process keeps running; the pod of the online node stops.
	for _, pod := range []*corev1.Pod{kept, other} {
		g.Expect(cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{})).To(Succeed())
	}
	g.Eventually(func() bool { return processAlive(otherPID) }).WithTimeout(10 * time.Second).Should(BeFalse())
	g.Eventually(func() bool {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, kept.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(10 * time.Second).Should(BeTrue())
	g.Consistently(func() bool { return processAlive(keptPID) }).WithTimeout(3*time.Second).Should(BeTrue(),
		"the process of a pod deleted while its node is offline stopped before the node returned")

	// Created for the offline node, a pod gets no process and no status from
	// the process kubelet (kwok hands it over: Running, without an IP).
	late := create("late", away)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, late.Name).Status.Phase).To(Equal(corev1.PodRunning))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) {
		pod := get(g, late.Name)
		g.Expect(pod.Status.PodIP).To(BeEmpty())
		g.Expect(podReady(pod)).To(BeFalse())
		_, err := readReport(root, pod)
		g.Expect(err).To(HaveOccurred(), "the pod created for the offline node runs")
	}).WithTimeout(3 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	g.Expect(k.Started()).To(Equal(3))
	g.Expect(processAlive(keptPID)).To(BeTrue())
	g.Expect(processAlive(staysPID)).To(BeTrue())

	// Back online: the deleted pod's process stops, the new pod starts, and
	// the pod that lived through it keeps its process and is Ready.
	g.Expect(c.SetNodeOffline(ctx, away, false)).To(Succeed())
	g.Eventually(func() bool { return processAlive(keptPID) }).WithTimeout(15 * time.Second).Should(BeFalse())
	latePod, _ := runningReady(late.Name)
	g.Expect(latePod.Spec.NodeName).To(Equal(away))
	g.Eventually(func(g Gomega) {
		pod := get(g, stays.Name)
		g.Expect(podReady(pod)).To(BeTrue())
		g.Expect(pod.Status.ContainerStatuses[0].RestartCount).To(BeZero())
		g.Expect(pidOf(g, pod)).To(Equal(staysPID))
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	g.Expect(processAlive(staysPID)).To(BeTrue())
	g.Expect(k.Started()).To(Equal(4))
	g.Expect(log.String()).To(ContainSubstring("node " + away + " is back"))
}

// probePod is a pod of the probe program bound to node, ready once the
// node's ready file exists.
func probePod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "probe", "slmops.dev/run-as-process": "yes"}},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "probe", Image: "registry.invalid/probe:1",
				Args: []string{"--data=/var/lib/probe"},
				Env: []corev1.EnvVar{
					{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "READY_FILE", Value: "/var/lib/probe/ready"},
					{Name: "CRASH_FILE", Value: "/var/lib/probe/crash"},
				},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")},
				}},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/probe"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/srv/probe", Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}}},
		},
	}
}

// TestProcessKubeletRunsServingPodsOfChosenNodes: a process kubelet given
// nodes runs the selected pods of those nodes only, each bounded to its
// node's CPU: GOMAXPROCS (and, where cgroups are writable, a CFS quota)
// follows ProcessCPULabel, so the two hardware classes differ. The pods of
// the other node, and unselected pods of the chosen nodes, stay kwok's.
func TestProcessKubeletRunsServingPodsOfChosenNodes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	binary := buildProbeProgram(t)
	const ns = "default"
	c, err := Up(ctx, Options{Dir: filepath.Join(t.TempDir(), "cluster"), BinDir: testBinDir(t), Nodes: 3, Sites: 1})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Down() })
	cs := c.Clientset

	// Of the two ARM boards and the mini PC, one of each architecture.
	chosen, err := c.ChooseProcessNodes(ctx, 2, map[string]string{"arm64": "1", "amd64": "2"})
	g.Expect(err).NotTo(HaveOccurred())
	board, pc, simulated := NodeName(0, 1), NodeName(2, 1), NodeName(1, 1)
	g.Expect(chosen).To(Equal([]string{board, pc}))
	for node, cpu := range map[string]string{board: "1", pc: "2"} {
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n.Labels).To(HaveKeyWithValue(ProcessNodeLabel, "true"))
		g.Expect(n.Labels).To(HaveKeyWithValue(ProcessCPULabel, cpu))
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, simulated, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n.Labels).NotTo(HaveKey(ProcessNodeLabel))

	root := t.TempDir()
	for _, node := range []string{board, pc, simulated} {
		dir := filepath.Join(root, "nodes", node, "hostpath", "srv", "probe")
		g.Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		g.Expect(os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644)).To(Succeed())
	}
	selector, err := labels.Parse("app.kubernetes.io/component=model-server")
	g.Expect(err).NotTo(HaveOccurred())
	var log lockedBuffer
	k, err := c.StartProcessKubelet(ctx, ProcessKubeletOptions{Name: "chosen", Selector: selector, Nodes: chosen, Binary: binary, Root: root, Log: &log})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_ = k.Stop()
		t.Logf("process kubelet log:\n%s", log.String())
	})

	serving := probePod("", "")
	serving.Labels = map[string]string{"app": "serving", "app.kubernetes.io/component": "model-server"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "serving", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "serving"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: serving.Labels}, Spec: serving.Spec},
		},
	}
	_, err = cs.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	other := probePod("other", board)
	other.Labels = map[string]string{"app": "other"}
	_, err = cs.CoreV1().Pods(ns).Create(ctx, other, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	pods := map[string]*corev1.Pod{}
	g.Eventually(func(g Gomega) {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=serving"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(list.Items).To(HaveLen(3))
		for i := range list.Items {
			pod := &list.Items[i]
			g.Expect(podReady(pod)).To(BeTrue(), "%s on %s", pod.Name, pod.Spec.NodeName)
			pods[pod.Spec.NodeName] = pod
		}
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())

	// The serving pod of the simulated node and the unselected pod are
	// kwok's: its pod IPs, no process.
	for _, pod := range []*corev1.Pod{pods[simulated], other} {
		g.Eventually(func(g Gomega) {
			got, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(podReady(got)).To(BeTrue())
			g.Expect(got.Status.PodIP).To(HavePrefix("10."), "%s on %s", got.Name, got.Spec.NodeName)
			g.Expect(got.Status.ContainerStatuses[0].ContainerID).To(BeEmpty())
		}).WithTimeout(30 * time.Second).Should(Succeed())
		_, err := readReport(root, pod)
		g.Expect(err).To(HaveOccurred(), "%s on %s ran as a process", pod.Name, pod.Spec.NodeName)
	}

	// The serving pods of the chosen nodes are processes, bounded by class.
	want := map[string]int64{board: 1000, pc: 2000}
	procs := map[string]string{}
	for node, millis := range want {
		pod := pods[node]
		g.Expect(pod.Status.PodIP).To(HavePrefix("127.2."))
		g.Expect(pod.Status.ContainerStatuses[0].ContainerID).To(HavePrefix("process://"))
		report, err := readReport(root, pod)
		g.Expect(err).NotTo(HaveOccurred())
		procs[node] = report["gomaxprocs"]
		g.Expect(report["gomaxprocs"]).To(Equal(fmt.Sprint(gomaxprocs(millis))), "GOMAXPROCS on %s", node)
		if k.cpu == nil {
			continue
		}
		var pid int
		_, err = fmt.Sscan(report["pid"], &pid)
		g.Expect(err).NotTo(HaveOccurred())
		quota, err := processCPUQuota(pid)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(quota).To(Equal(millis*cfsPeriod/1000), "CFS quota of the process on %s", node)
	}
	if runtime.NumCPU() >= 2 {
		g.Expect(procs[board]).NotTo(Equal(procs[pc]), "both classes run with the same GOMAXPROCS")
	}
	if k.cpu == nil {
		t.Log("no writable cgroup v1 cpu hierarchy here: GOMAXPROCS alone bounds the processes")
	}
}

// processCPUQuota reads the CFS quota of the cpu cgroup that pid is in.
func processCPUQuota(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0, err
	}
	mountPoint, mountRoot, err := cpuHierarchy()
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), "cpu") {
			rel, err := filepath.Rel(mountRoot, parts[2])
			if err != nil {
				return 0, err
			}
			q, err := os.ReadFile(filepath.Join(mountPoint, rel, "cpu.cfs_quota_us"))
			if err != nil {
				return 0, err
			}
			var quota int64
			_, err = fmt.Sscan(string(q), &quota)
			return quota, err
		}
	}
	return 0, fmt.Errorf("pid %d is in no cpu cgroup", pid)
}

// TestProcessKubeletProjectsBoundServiceAccountTokens: a pod that mounts its
// service account token (automountServiceAccountToken, which the API
// server's admission turns into a projected volume, or a projected volume of
// its own) gets a token bound to the pod, the cluster's ca.crt and its
// namespace at its mount path, and the local API server in
// KUBERNETES_SERVICE_HOST/PORT: the process authenticates as its service
// account, and the API server names the pod in the user's extra.
func TestProcessKubeletProjectsBoundServiceAccountTokens(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	binary := buildProbeProgram(t)
	const ns = "default"
	c, err := Up(ctx, Options{Dir: filepath.Join(t.TempDir(), "cluster"), BinDir: testBinDir(t), Nodes: 1, Sites: 1})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Down() })
	cs := c.Clientset
	node := NodeName(0, 1)

	root := t.TempDir()
	dir := filepath.Join(root, "nodes", node, "hostpath", "srv", "probe")
	g.Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644)).To(Succeed())
	selector, err := labels.Parse("slmops.dev/run-as-process")
	g.Expect(err).NotTo(HaveOccurred())
	var log lockedBuffer
	k, err := c.StartProcessKubelet(ctx, ProcessKubeletOptions{Name: "tokens", Selector: selector, Binary: binary, Root: root, Log: &log})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_ = k.Stop()
		t.Logf("process kubelet log:\n%s", log.String())
	})

	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reporter"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	automount := probePod("automount", node)
	automount.Spec.ServiceAccountName = "reporter"
	automount.Spec.Containers[0].Env = append(automount.Spec.Containers[0].Env,
		corev1.EnvVar{Name: "TOKEN_DIR", Value: "/var/run/secrets/kubernetes.io/serviceaccount"})
	own := probePod("own-projection", node)
	own.Spec.AutomountServiceAccountToken = ptr.To(false)
	own.Spec.Volumes = append(own.Spec.Volumes, corev1.Volume{Name: "report-token", VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience: "slmops-test", ExpirationSeconds: ptr.To[int64](600), Path: "report/token",
		}}}},
	}})
	own.Spec.Containers[0].VolumeMounts = append(own.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "report-token", MountPath: "/var/run/secrets/slmops"})
	pods := map[string]*corev1.Pod{}
	for _, pod := range []*corev1.Pod{automount, own} {
		// Created once the namespace's default service account exists, as
		// the ServiceAccount admission asks.
		g.Eventually(func() error {
			created, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			pods[pod.Name] = created
			return err
		}).WithTimeout(30 * time.Second).Should(Succeed())
	}
	for name := range pods {
		g.Eventually(func(g Gomega) {
			pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(podReady(pod)).To(BeTrue())
			g.Expect(pod.Status.PodIP).To(HavePrefix("127.2."))
			pods[name] = pod
		}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	}

	// The process reads its token, verifies the API server with ca.crt and
	// asks who it is.
	var review struct {
		Status struct {
			UserInfo struct {
				Username string              `json:"username"`
				Extra    map[string][]string `json:"extra"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	pod := pods[automount.Name]
	whoami := func(query string) {
		t.Helper()
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + pod.Status.PodIP + ":8080/whoami" + query)
		g.Expect(err).NotTo(HaveOccurred())
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.StatusCode).To(Equal(http.StatusCreated), "SelfSubjectReview%s: %s", query, body)
		g.Expect(resp.Header.Get("X-Namespace")).To(Equal(ns))
		g.Expect(json.Unmarshal(body, &review)).To(Succeed())
		g.Expect(review.Status.UserInfo.Username).To(Equal("system:serviceaccount:default:reporter"))
		g.Expect(review.Status.UserInfo.Extra).To(HaveKeyWithValue("authentication.kubernetes.io/pod-name", []string{automount.Name}))
		g.Expect(review.Status.UserInfo.Extra).To(HaveKeyWithValue("authentication.kubernetes.io/pod-uid", []string{string(pod.UID)}))
	}
	whoami("") // TOKEN_DIR, translated
	// At the path compiled into clients too, where the process gets a
	// mount namespace of its own.
	if _, err := privateMounts(); err == nil {
		whoami("?dir=/var/run/secrets/kubernetes.io/serviceaccount")
		_, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount")
		g.Expect(err).To(HaveOccurred(), "the token folder shows outside the process's mount namespace")
	} else {
		t.Logf("no private mount namespaces here (%v): the compiled-in path is not checked", err)
	}

	// A projection of its own: the token for its audience, at its path.
	pod = pods[own.Name]
	g.Expect(pod.Spec.Volumes).To(HaveLen(2), "automountServiceAccountToken false, and still a kube-api-access volume")
	token, err := os.ReadFile(filepath.Join(root, "pods", string(pod.UID), "projected", "report-token", "report", "token"))
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
		Token: string(token), Audiences: []string{"slmops-test"},
	}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tr.Status.Error).To(BeEmpty())
	g.Expect(tr.Status.Authenticated).To(BeTrue())
	g.Expect(tr.Status.Audiences).To(Equal([]string{"slmops-test"}))
	g.Expect(tr.Status.User.Username).To(Equal("system:serviceaccount:default:default"))
	g.Expect(tr.Status.User.Extra).To(HaveKeyWithValue("authentication.kubernetes.io/pod-name", authenticationv1.ExtraValue{own.Name}))

	// Bound to the pod, the token dies with it.
	g.Expect(cs.CoreV1().Pods(ns).Delete(ctx, own.Name, metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(func(g Gomega) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, own.Name, metav1.GetOptions{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		tr, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
			Token: string(token), Audiences: []string{"slmops-test"},
		}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(tr.Status.Authenticated).To(BeFalse())
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

func TestTokenDue(t *testing.T) {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hour := &issuedToken{issued: issued, expires: issued.Add(time.Hour)}
	week := &issuedToken{issued: issued, expires: issued.Add(7 * 24 * time.Hour)}
	for name, tc := range map[string]struct {
		token *issuedToken
		now   time.Time
		want  bool
	}{
		"no token yet":                           {token: nil, now: issued, want: true},
		"a fresh token":                          {token: hour, now: issued.Add(time.Minute), want: false},
		"just before 80% of its life":            {token: hour, now: issued.Add(47 * time.Minute), want: false},
		"at 80% of its life":                     {token: hour, now: issued.Add(48 * time.Minute), want: true},
		"expired":                                {token: hour, now: issued.Add(2 * time.Hour), want: true},
		"a long-lived token older than 24 hours": {token: week, now: issued.Add(25 * time.Hour), want: true},
		"a long-lived token a day old at most":   {token: week, now: issued.Add(23 * time.Hour), want: false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := tokenDue(tc.token, tc.now); got != tc.want {
				t.Errorf("tokenDue = %v, want %v", got, tc.want)
			}
		})
	}
}
