package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

func (c *cli) promoteCommand() *cobra.Command {
	var full bool
	cmd := &cobra.Command{
		Use:   "promote NAME",
		Short: "Promote the current step now, skipping its pause and analysis (--full: every target node at once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := slmopsv1alpha1.PromoteAnnotation
			if full {
				key = slmopsv1alpha1.PromoteFullAnnotation
			}
			return c.annotate(cmd, args[0], key)
		},
	}
	cmd.Flags().BoolVar(&full, "full", false, "promote the canary to every target node at once")
	return cmd
}

func (c *cli) annotationCommand(use, key, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return c.annotate(cmd, args[0], key) },
	}
}

// annotate sets key to a new value (the time), which the operator acts on
// once; it never removes it, so a GitOps tool sees no drift.
func (c *cli) annotate(cmd *cobra.Command, name, key string) error {
	r, err := c.get(cmd.Context(), name)
	if err != nil {
		return err
	}
	value := time.Now().UTC().Format(time.RFC3339Nano)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err := c.client.Patch(cmd.Context(), r, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("edgerollout %s/%s: %w", c.ns, name, err)
	}
	fmt.Fprintf(c.out, "edgerollout %s/%s: %s=%s (the operator acts on it once)\n", c.ns, name, key, value)
	return nil
}

func (c *cli) pauseCommand(use string, paused bool, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " NAME",
		Short: short,
		Long: short + ".\nspec.paused is part of the spec: in a GitOps setup change it in Git instead,\n" +
			"or the GitOps tool will set it back.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := c.get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"paused": paused}})
			if err := c.client.Patch(cmd.Context(), r, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return fmt.Errorf("edgerollout %s/%s: %w", c.ns, args[0], err)
			}
			fmt.Fprintf(c.out, "edgerollout %s/%s: %sd\n", c.ns, args[0], use)
			return nil
		},
	}
}
