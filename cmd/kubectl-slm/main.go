// Command kubectl-slm is the kubectl plugin for slmops rollouts: installed
// on the PATH it runs as `kubectl slm`. It reads the kubeconfig the way
// kubectl does (--kubeconfig, KUBECONFIG, --context, --namespace, ...).
//
//	kubectl slm status tinyllama-stores [--watch]
//	kubectl slm promote tinyllama-stores [--full]
//	kubectl slm pause|resume|abort|retry tinyllama-stores
//	kubectl slm history tinyllama-stores
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(exit.code)
		}
		os.Exit(1)
	}
}

// exitError ends the command with a code after it printed what it had to
// (status --watch of a rollout that failed).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// cli holds what every subcommand needs.
type cli struct {
	flags  *genericclioptions.ConfigFlags
	out    io.Writer
	client client.Client
	ns     string
}

func newRootCommand(out, errOut io.Writer) *cobra.Command {
	c := &cli{flags: genericclioptions.NewConfigFlags(true), out: out}
	root := &cobra.Command{
		Use:   "kubectl-slm",
		Short: "Watch and steer slmops EdgeRollouts",
		Long: "kubectl slm shows where an EdgeRollout is (step, cohort, sites, failing nodes)\n" +
			"and promotes, pauses, resumes, aborts or retries it. Promote, abort and retry\n" +
			"are annotations the operator acts on once per value, so they also work from Git.",
		SilenceUsage:  true,
		SilenceErrors: false,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return c.connect()
		},
	}
	root.SetOut(out)
	root.SetErr(errOut)
	c.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(c.statusCommand(), c.historyCommand(), c.promoteCommand(),
		c.annotationCommand("abort", slmopsv1alpha1.AbortAnnotation, "Move the canary cohort back to the stable revision and stop"),
		c.annotationCommand("retry", slmopsv1alpha1.RetryAnnotation, "Start an aborted, rolled-back or degraded canary again at step 0"),
		c.pauseCommand("pause", true, "Hold the rollout where it is (sets spec.paused)"),
		c.pauseCommand("resume", false, "Let a paused rollout go on (clears spec.paused)"),
	)
	return root
}

func (c *cli) connect() error {
	cfg, err := c.flags.ToRESTConfig()
	if err != nil {
		return err
	}
	ns, _, err := c.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := slmopsv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c.client, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	c.ns = ns
	return nil
}

func (c *cli) get(ctx context.Context, name string) (*slmopsv1alpha1.EdgeRollout, error) {
	r := &slmopsv1alpha1.EdgeRollout{}
	if err := c.client.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: name}, r); err != nil {
		return nil, fmt.Errorf("edgerollout %s/%s: %w", c.ns, name, err)
	}
	return r, nil
}
