// Command manager runs the slmops operator: the controllers that reconcile
// SLMModels and EdgeRollouts into DaemonSets on edge nodes.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"
	// The staging windows' time zones, the same database as the API
	// server's, which admission checks them against; a distroless image has
	// none of its own.
	_ "time/tzdata"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers"
	"github.com/slmops/slmops/controllers/edgerollout"
	"github.com/slmops/slmops/inferd/config"
)

// leaderElectionID names the Lease that the replicas of the manager compete for.
const leaderElectionID = "slmops-manager.slmops.dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		metricsAddr          string
		metricsSecure        bool
		metricsCertDir       string
		probeAddr            string
		pprofAddr            string
		leaderElect          bool
		leaderElectNamespace string
		shutdownTimeout      time.Duration
		workers              int
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443",
		"Address of the Prometheus metrics endpoint; 0 turns it off.")
	flag.BoolVar(&metricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS, and only to clients that the API server authenticates and authorizes for GET /metrics.")
	flag.StringVar(&metricsCertDir, "metrics-cert-dir", "",
		"Folder with tls.crt and tls.key for the metrics endpoint; empty means a self-signed certificate made at start.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0",
		"Address of Go's /debug/pprof profiles, to find where the manager spends its time; 0 (the default) turns it off. Bind it to 127.0.0.1: it is not authenticated.")
	flag.BoolVar(&leaderElect, "leader-elect", true,
		"Elect a leader through a Lease, so that only one replica reconciles at a time.")
	flag.StringVar(&leaderElectNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; empty means the namespace the manager runs in.")
	flag.DurationVar(&shutdownTimeout, "graceful-shutdown-timeout", 30*time.Second,
		"How long in-flight reconciles may take to finish after SIGTERM.")
	var defaults edgerollout.Defaults
	flag.StringVar(&defaults.InferdImage, "inferd-image", edgerollout.DefaultInferdImage,
		"The inferd image of rollouts that name none in spec.template.image; changing it rolls the new image out as a canary.")
	flag.StringVar(&defaults.ModelCacheDir, "model-cache-dir", config.DefaultCacheDir,
		"The node folder (a hostPath) where inferd keeps verified models between restarts and revisions.")
	flag.BoolVar(&defaults.InferdReports, "inferd-reports", false,
		"Serving inferd pods write their self-test report into their own pod's annotation, as the ServiceAccount slmops-inferd, in the namespaces where it exists (the chart's inferd.report.namespaces: bound to the ClusterRole slmops-inferd-report and narrowed by the admission policy slmops-inferd-report); off, no inferd pod gets a token.")
	flag.Func("model-cache-max-bytes",
		"How much of the node cache (a quantity: 0, 20Gi) may hold models that no rollout on the node pins, least recently used evicted first; 0 keeps only pinned models (every rollout's stable and canary). Default 0.",
		func(v string) error {
			q, err := resource.ParseQuantity(v)
			if err != nil || q.Sign() < 0 {
				return fmt.Errorf("want a non-negative quantity such as 20Gi, got %q", v)
			}
			defaults.ModelCacheMaxBytes = q.Value()
			return nil
		})
	flag.IntVar(&workers, "rollout-workers", edgerollout.DefaultWorkers,
		"How many EdgeRollouts are reconciled at once (1 to 64). Many rollouts moving together wait in the queue for a worker; more workers help only while the API server has room for their requests.")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	if workers < 1 || workers > 64 {
		return fmt.Errorf("--rollout-workers=%d: give a number from 1 to 64", workers)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(slmopsv1alpha1.AddToScheme(scheme))

	metricsOpts := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: metricsSecure,
		CertDir:       metricsCertDir,
		// HTTP/2 is off: it exposed the Rapid Reset and Stream Cancellation
		// vulnerabilities (CVE-2023-44487, CVE-2023-39325), and Prometheus
		// scrapes fine over HTTP/1.1.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       leaderElectNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &shutdownTimeout,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{Defaults: defaults, Workers: workers}); err != nil {
		return fmt.Errorf("set up controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	// Ready once the informer caches have synced: a replica that cannot read
	// the cluster yet should not get traffic or be counted as available.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}

	log.Info("Starting manager", "leaderElection", leaderElect, "metrics", metricsAddr, "probes", probeAddr,
		"inferdImage", defaults.InferdImage, "modelCacheDir", defaults.ModelCacheDir, "inferdReports", defaults.InferdReports,
		"modelCacheMaxBytes", defaults.ModelCacheMaxBytes)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	log.Info("Manager stopped")
	return nil
}
