package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slmops/slmops/test/testenv"
)

// leaseName is the manager's leader election Lease (cmd/manager).
const leaseName = "slmops-manager.slmops.dev"

func freeAddr(t *testing.T) string { return testenv.FreeAddr(t) }

// TestManagerServesProbesSecureMetricsLeadsAndShutsDownGracefully runs the real
// manager binary against the local API server, as a Deployment replica would run.
func TestManagerServesProbesSecureMetricsLeadsAndShutsDownGracefully(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cs := cluster.Clientset
	ns, err := cs.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-manager-"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })

	// The metrics endpoint gets a certificate that the cluster CA signed for
	// 127.0.0.1, so the scrape below verifies TLS as Prometheus would.
	certDir := t.TempDir()
	g.Expect(os.Symlink(cluster.ServingCert, filepath.Join(certDir, "tls.crt"))).To(Succeed())
	g.Expect(os.Symlink(cluster.ServingKey, filepath.Join(certDir, "tls.key"))).To(Succeed())

	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	var logs strings.Builder
	cmd := exec.Command(managerBin,
		"--leader-elect=true",
		"--leader-election-namespace="+ns.Name,
		"--metrics-bind-address="+metricsAddr,
		"--metrics-cert-dir="+certDir,
		"--health-probe-bind-address="+probeAddr,
		"--graceful-shutdown-timeout=10s",
	)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	g.Expect(cmd.Start()).To(Succeed())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("manager logs:\n%s", logs.String())
		}
	})

	plain := &http.Client{Timeout: 2 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		g.Eventually(func() (int, error) {
			return statusOf(plain, "http://"+probeAddr+path, "")
		}).WithTimeout(30*time.Second).Should(Equal(http.StatusOK), path)
	}

	// Leader election: the Lease names this process's identity.
	g.Eventually(func(g Gomega) {
		lease, err := cs.CoordinationV1().Leases(ns.Name).Get(ctx, leaseName, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
		g.Expect(*lease.Spec.HolderIdentity).NotTo(BeEmpty())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Metrics: refused without credentials, served to a ServiceAccount that RBAC
	// allows to GET /metrics.
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(cluster.CACert)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pool.AppendCertsFromPEM(ca)).To(BeTrue())
	verified := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	metricsURL := "https://" + metricsAddr + "/metrics"
	g.Expect(statusOf(verified, metricsURL, "")).To(Equal(http.StatusUnauthorized))

	token := metricsReaderToken(t, ns.Name)
	var body string
	g.Eventually(func(g Gomega) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := verified.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), string(b))
		body = string(b)
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(body).To(ContainSubstring(fmt.Sprintf(`leader_election_master_status{name=%q} 1`, leaseName)))

	// Graceful shutdown: SIGTERM ends the process with status 0 and releases
	// the Lease, so a standby replica takes over at once.
	g.Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	g.Eventually(exited).WithTimeout(20 * time.Second).Should(Receive(BeNil()))
	g.Expect(logs.String()).To(ContainSubstring("Manager stopped"))
	lease, err := cs.CoordinationV1().Leases(ns.Name).Get(ctx, leaseName, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(released(lease)).To(BeTrue(), "lease still held by %v", lease.Spec.HolderIdentity)
}

func released(lease *coordinationv1.Lease) bool {
	return lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == ""
}

func statusOf(c *http.Client, url, token string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// metricsReaderToken returns a token of a ServiceAccount bound to a ClusterRole
// that may GET /metrics, as a Prometheus in the cluster would have.
func metricsReaderToken(t *testing.T, ns string) string {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	cs := cluster.Clientset
	sa, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	role, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-metrics-reader-"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	binding, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-metrics-reader-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: ns}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
		_ = cs.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}
