package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/fetch"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/localcluster"
)

// smallDiskNodes are the nodes whose disk cannot hold the model: their
// stagers fail, and the rollout goes on without them.
var smallDiskNodes = []string{localcluster.NodeName(0, suiteSites), localcluster.NodeName(5, suiteSites), localcluster.NodeName(10, suiteSites)}

// TestFleetDistribution rolls a real GGUF model out to the 200 simulated
// nodes in 4 sites twice, from a local origin that counts the bytes it
// sends: once with staging alone, once with staging and site-local peer
// sharing. Simulated nodes run no containers, so the stagers, the pods that
// fetch and verify the model before a node may join the canary, run as real
// inferd processes, one per node on its own loopback address, under a
// process kubelet (localcluster.StartProcessKubelet) that mounts each node's
// cache folder and the rollout's peer directory for them and reports their
// readiness. Three nodes have a 1 MiB disk: their stagers fail, and the
// rollout completes on the other nodes with those three listed and why.
//
// `make bench-distribution` runs this test; it ends with the line
// "origin bytes per site = R copies".
func TestFleetDistribution(t *testing.T) {
	inferdBin := buildBinary(t, "./cmd/inferd")
	// Each run in its own subtest, so that its operator and process kubelet
	// are gone before the next starts.
	var off, on distributionRun
	t.Run("peer sharing off", func(t *testing.T) { off = distribute(t, inferdBin, "fleet-off", runOptions{seed: 101}) })
	t.Run("peer sharing on", func(t *testing.T) { on = distribute(t, inferdBin, "fleet-on", runOptions{seed: 202, sharing: true}) })
	// A seed whose cached file is corrupted right after it staged: it
	// notices (the file changed since it hashed it), stops serving it, goes
	// unready and fetches it again; a peer that got bad bytes from it first
	// skips it. Every node, the seed too, ends with the right model.
	t.Run("a corrupt peer", func(t *testing.T) {
		distribute(t, inferdBin, "fleet-liar", runOptions{seed: 303, sharing: true, site: localcluster.SiteName(0, suiteSites), corruptSeed: true})
	})
	if t.Failed() {
		return
	}

	sites := float64(suiteSites)
	perSiteOff := float64(off.originBytes) / float64(off.size) / sites
	perSiteOn := float64(on.originBytes) / float64(on.size) / sites
	fmt.Printf("distribution: %d nodes in %d sites, model %d bytes, %d nodes excluded (disk too small)\n", suiteNodes, suiteSites, on.size, len(smallDiskNodes))
	fmt.Printf("distribution: peer sharing off: origin sent %d bytes = %.2f copies per site, %s to complete\n", off.originBytes, perSiteOff, off.took.Round(time.Second))
	fmt.Printf("distribution: peer sharing on:  origin sent %d bytes = %.2f copies per site, %s to complete; %d bytes from peers\n", on.originBytes, perSiteOn, on.took.Round(time.Second), on.peerBytes)
	fmt.Printf("distribution: origin egress with sharing = %.3fx of without\n", float64(on.originBytes)/float64(off.originBytes))
	fmt.Printf("origin bytes per site = %.2f copies\n", perSiteOn)

	if limit := 1.5 * sites * float64(on.size); float64(on.originBytes) > limit {
		t.Errorf("with peer sharing the origin sent %d bytes; want at most 1.5 x sites x model size = %.0f", on.originBytes, limit)
	}
	if want := int64(suiteNodes-len(smallDiskNodes)) * off.size; off.originBytes < want {
		t.Errorf("without peer sharing the origin sent %d bytes; every one of the %d nodes that staged needs a copy, %d", off.originBytes, suiteNodes-len(smallDiskNodes), want)
	}
}

type distributionRun struct {
	size, originBytes, peerBytes int64
	took                         time.Duration
}

type runOptions struct {
	// seed makes the model file of the run.
	seed int
	// sharing turns peer sharing on.
	sharing bool
	// site limits the rollout to the nodes of one site.
	site string
	// corruptSeed flips a byte of the first node's cached file the moment
	// it is in place, so that the node serves a corrupted file to its peers.
	corruptSeed bool
}

// distribute rolls a fresh model out with staging, and with peer sharing
// when asked, and checks how it ended.
func distribute(t *testing.T, inferdBin, prefix string, o runOptions) distributionRun {
	g := NewWithT(t)
	ctx := context.Background()
	c := kube(t)
	ns := newNamespace(t, "e2e-"+prefix)

	// A real GGUF file of about 2 MiB, different in each run so that no node
	// has it in its cache yet.
	var buf bytes.Buffer
	g.Expect(bigram.Write(&buf, bigram.BuildOptions{Name: fmt.Sprintf("fleet-%d", o.seed), Type: gguf.Q8_0, PadBytes: 2<<20 + uint64(o.seed)})).To(Succeed())
	data := buf.Bytes()
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	var originBytes atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(&countingWriter{ResponseWriter: w, n: &originBytes}, r, "model.gguf", time.Unix(0, 0), bytes.NewReader(data))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = origin.Serve(ln) }()
	t.Cleanup(func() { _ = origin.Close() })

	// The stagers of this rollout run as processes; every other pod stays kwok's.
	hasStage, err := labels.NewRequirement(slmopsv1alpha1.StageRevisionLabel, selection.Exists, nil)
	g.Expect(err).NotTo(HaveOccurred())
	inNS, err := labels.NewRequirement(slmopsv1alpha1.RolloutLabel, selection.Equals, []string{prefix})
	g.Expect(err).NotTo(HaveOccurred())
	root, err := os.MkdirTemp("", "slmops-nodes-")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	disks := map[string]int64{}
	for _, n := range smallDiskNodes {
		disks[n] = 1 << 20
	}
	pk, err := cluster.StartProcessKubelet(ctx, localcluster.ProcessKubeletOptions{
		Name: prefix, Selector: labels.NewSelector().Add(*hasStage, *inNS), Binary: inferdBin, Root: root, NodeDiskBytes: disks,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = pk.Stop() })

	startOperator(t, ns)
	m := model(ns, digest)
	m.Spec.Source.HTTP.URL, m.Spec.Source.HTTP.AllowInsecureHTTP = "http://"+ln.Addr().String()+"/fleet.gguf", true
	m.Spec.SizeBytes = ptr.To(int64(len(data)))
	r := rollout(ns, "10%", "50%", "100%")
	r.Name = prefix
	// A loaded 2-core machine runs 200 stager processes here: give kwok's
	// simulated serving pods time, since this test is not about the deadline.
	r.Spec.Strategy.Canary.ProgressDeadlineSeconds = 180
	r.Spec.Strategy.Canary.MinReadySeconds = ptr.To[int32](0)
	r.Spec.Distribution.Staging = &slmopsv1alpha1.Staging{LookaheadSteps: ptr.To[int32](1), MaxConcurrentNodes: 50}
	if o.sharing {
		r.Spec.Distribution.PeerSharing = &slmopsv1alpha1.PeerSharing{MaxPeers: 3}
	}
	targets := map[string]bool{}
	for i := range suiteNodes {
		if o.site == "" || localcluster.SiteName(i, suiteSites) == o.site {
			targets[localcluster.NodeName(i, suiteSites)] = true
		}
	}
	if o.site != "" {
		r.Spec.NodeSelector.MatchLabels[localcluster.ZoneLabel] = o.site
	}
	cachePath := func(node string) string {
		return filepath.Join(root, "nodes", node, "hostpath", config.DefaultCacheDir, "sha256", strings.TrimPrefix(digest, "sha256:"))
	}
	var corrupted atomic.Value
	if o.corruptSeed {
		watch, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			for watch.Err() == nil {
				for node := range targets {
					if fi, err := os.Stat(cachePath(node)); err == nil && fi.Size() == int64(len(data)) {
						if err := flipByte(cachePath(node), 1000); err != nil {
							t.Errorf("corrupt the cache of %s: %v", node, err)
						}
						corrupted.Store(node)
						return
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	began := time.Now()
	createRollout(t, c, m, r)
	done := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, "", 6*time.Minute, nil)
	took := time.Since(began)

	// The three small-disk nodes are excluded with the stager's reason; no
	// canary node failed; every other node runs the new revision.
	ds := done.Status.Distribution
	g.Expect(ds).NotTo(BeNil())
	var excluded []string
	for _, e := range ds.ExcludedNodes {
		excluded = append(excluded, e.Node)
		g.Expect(e.Reason).To(Equal(slmopsv1alpha1.ExcludedInsufficientDisk), "node %s: %s", e.Node, e.Message)
		g.Expect(e.Message).To(ContainSubstring("free"))
	}
	sort.Strings(excluded)
	var want []string
	for _, n := range smallDiskNodes {
		if targets[n] {
			want = append(want, n)
		}
	}
	sort.Strings(want)
	g.Expect(excluded).To(Equal(want))
	g.Expect(ds.FailedNodes).To(BeNumerically("==", len(want)))
	g.Expect(done.Status.FailingNodes).To(BeEmpty())
	g.Expect(conditionMessage(done, slmopsv1alpha1.ConditionReady)).To(ContainSubstring(fmt.Sprintf("%d target nodes excluded", len(want))))
	v := viewFleet(t, ns, r.Name)
	onNew := 0
	for node, rev := range v.revisionOf {
		if rev == done.Status.StableRevision {
			onNew++
		}
		for _, small := range want {
			g.Expect(node == small && rev == done.Status.StableRevision).To(BeFalse(), "small-disk node %s was switched", small)
		}
	}
	g.Expect(onNew).To(Equal(len(targets) - len(want)))

	// Each node that staged holds the verified file in its own cache; the
	// one whose file the test corrupted has healed, or heals at its next
	// fetch.
	liar, _ := corrupted.Load().(string)
	if o.corruptSeed {
		g.Expect(liar).NotTo(BeEmpty(), "no node's cache was corrupted")
	}
	cached, healed := 0, false
	for node := range targets {
		b, err := os.ReadFile(cachePath(node))
		if err != nil {
			continue
		}
		cached++
		got := sha256.Sum256(b)
		if node == liar && "sha256:"+hex.EncodeToString(got[:]) != digest {
			// The rollout may complete before the seed's stager notices
			// (it checks every few seconds, and goes with the rollout);
			// its next fetch, or its serving pod's start, then does.
			f := &fetch.Fetcher{CacheDir: filepath.Dir(filepath.Dir(cachePath(liar)))}
			res, _, err := f.FetchVia(ctx, nil, fetch.HTTPSource(f, m.Spec.Source.HTTP.URL), digest, int64(len(data)))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Replaced).To(BeTrue(), "the rotten cached file was not noticed")
			b, _ = os.ReadFile(cachePath(liar))
			g.Expect(bytes.Equal(b, data)).To(BeTrue(), "the liar's cache after a fresh fetch")
			continue
		}
		if node == liar {
			healed = true
		}
		g.Expect("sha256:"+hex.EncodeToString(got[:])).To(Equal(digest), "the cache of %s", node)
	}
	g.Expect(cached).To(Equal(len(targets)-len(want)), "nodes with the model in their cache")
	peerBytes := int64(cached)*int64(len(data)) - originBytes.Load()

	if liar != "" {
		// Peers that fetched from it before it noticed saw the digest fail
		// and went on; it served nothing once it knew.
		skipped := 0
		logs, _ := filepath.Glob(filepath.Join(root, "pods", "*", "log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if bytes.Contains(b, []byte("Skipped a peer")) && bytes.Contains(b, []byte(fetch.ErrDigestMismatch.Error())) {
				skipped++
			}
		}
		how := "its next fetch replaced it"
		if healed {
			how = "its stager noticed and fetched it again"
		}
		fmt.Printf("distribution: a corrupt peer: %s's cache was corrupted after it staged (%s); %d stagers of %s skipped it after a digest mismatch; all %d nodes hold the right model\n",
			liar, how, skipped, o.site, cached)
	}

	// Staging is over: the stagers are gone with their labels.
	g.Eventually(func() int { return len(stageLabelled(t, ns, r.Name)) }).WithTimeout(time.Minute).Should(Equal(len(want)),
		"only the nodes that could not stage keep their stager (it retries)")
	return distributionRun{size: int64(len(data)), originBytes: originBytes.Load(), peerBytes: max(peerBytes, 0), took: took}
}

// stageLabelled lists the nodes that carry the rollout's stage label.
func stageLabelled(t *testing.T, ns, name string) []string {
	t.Helper()
	nodes, err := cluster.Clientset.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: slmopsv1alpha1.StageLabel(ns, name)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range nodes.Items {
		out = append(out, n.Name)
	}
	return out
}

func conditionMessage(r *slmopsv1alpha1.EdgeRollout, typ string) string {
	for _, c := range r.Status.Conditions {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}

// flipByte changes one byte of a file in place, as a failing disk would.
func flipByte(path string, at int64) error {
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	b := make([]byte, 1)
	if _, err := file.ReadAt(b, at); err != nil {
		return err
	}
	_, err = file.WriteAt([]byte{b[0] ^ 0x5a}, at)
	return err
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}
