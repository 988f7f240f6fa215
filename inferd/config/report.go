package config

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// The self-test report is how a serving inferd tells the operator what it
// measured on its node: one compact JSON document in an annotation of its
// own pod (ReportAnnotation), written once per pod after the self-test, so
// it costs one API write per node per revision and the operator reads it
// from the pods it already watches, without polling a node. inferd writes
// it with FormatReport and the operator reads it with ParseReport, so the
// two sides cannot drift apart. It never holds prompt or answer text.

// ReportAnnotation is the pod annotation that holds inferd's self-test
// report.
const ReportAnnotation = "slmops.dev/self-test"

// MaxReportBytes bounds a report: what ParseReport accepts and what
// FormatReport writes (a report of MaxReportPrompts prompts fits easily).
const MaxReportBytes = 2048

// MaxReportPrompts bounds the per-prompt results in a report.
const MaxReportPrompts = 32

// maxReportMessage bounds the report's message.
const maxReportMessage = 256

// Report is what inferd measured and decided in its self-test, as the
// operator reads it.
type Report struct {
	// Digest is the model file the report is about.
	Digest string `json:"digest"`
	// Passed is the gate; Reason is ReasonPassed or why not (such as
	// ReasonSelfTestFailed), Message says it in words.
	Passed  bool   `json:"passed"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
	// Prompts is, per golden prompt in order, whether it passed.
	Prompts []bool `json:"prompts,omitempty"`
	// DecodeTokensPerSecond is the generation rate over every prompt;
	// PromptTokensPerSecond the rate at which prompts were read.
	DecodeTokensPerSecond float64 `json:"decodeTokensPerSecond"`
	PromptTokensPerSecond float64 `json:"promptTokensPerSecond"`
	// TimeToFirstTokenSeconds is the slowest prompt's.
	TimeToFirstTokenSeconds float64 `json:"timeToFirstTokenSeconds"`
	// PeakRSSBytes is inferd's peak resident memory with the model loaded.
	PeakRSSBytes int64 `json:"peakRSSBytes"`
	// LoadSeconds is how long loading the model took.
	LoadSeconds float64 `json:"loadSeconds"`
	// MemoryEstimateBytes is the memory inferd estimated the model needs
	// before it loaded it (`inferd check`: the weights and the KV cache of
	// every concurrent sequence at the context length); 0 when the file
	// could not be read. The operator's fit check uses it for the nodes
	// that have not switched yet.
	MemoryEstimateBytes int64 `json:"memoryEstimateBytes,omitempty"`
}

// ReasonPassed is the reason of a report whose self-test passed.
const ReasonPassed = "Passed"

// FormatReport is the annotation value of r: its message cut, its prompts
// bounded, and every figure finite.
func FormatReport(r Report) (string, error) {
	if err := r.check(); err != nil {
		return "", err
	}
	r.Message = strings.ReplaceAll(strings.TrimSpace(r.Message), "\n", " ")
	if len(r.Message) > maxReportMessage {
		r.Message = r.Message[:maxReportMessage-3] + "..."
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	if len(b) > MaxReportBytes {
		return "", fmt.Errorf("self-test report: %d bytes, more than %d", len(b), MaxReportBytes)
	}
	return string(b), nil
}

// ParseReport reads an annotation written by FormatReport. Anything else (too
// long, not JSON, unknown fields, a figure that is negative or not finite,
// too many prompts) is an error: the annotation is on a pod, and a pod's
// annotations are not only inferd's.
func ParseReport(s string) (Report, error) {
	var r Report
	if len(s) > MaxReportBytes {
		return r, fmt.Errorf("self-test report: %d bytes, more than %d", len(s), MaxReportBytes)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Report{}, fmt.Errorf("self-test report: %w", err)
	}
	if dec.More() {
		return Report{}, fmt.Errorf("self-test report: more than one JSON value")
	}
	if err := r.check(); err != nil {
		return Report{}, err
	}
	return r, nil
}

func (r Report) check() error {
	for name, v := range map[string]float64{
		"decodeTokensPerSecond": r.DecodeTokensPerSecond, "promptTokensPerSecond": r.PromptTokensPerSecond,
		"timeToFirstTokenSeconds": r.TimeToFirstTokenSeconds, "loadSeconds": r.LoadSeconds,
	} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("self-test report: %s is %v; want a finite figure of at least 0", name, v)
		}
	}
	if r.PeakRSSBytes < 0 {
		return fmt.Errorf("self-test report: peakRSSBytes is %d; want at least 0", r.PeakRSSBytes)
	}
	if r.MemoryEstimateBytes < 0 {
		return fmt.Errorf("self-test report: memoryEstimateBytes is %d; want at least 0", r.MemoryEstimateBytes)
	}
	if len(r.Prompts) > MaxReportPrompts {
		return fmt.Errorf("self-test report: %d prompts, more than %d", len(r.Prompts), MaxReportPrompts)
	}
	if r.Reason == "" || len(r.Reason) > 64 {
		return fmt.Errorf("self-test report: reason %q; want a CamelCase word", r.Reason)
	}
	if r.Digest != "" && !digestPattern.MatchString(r.Digest) {
		return fmt.Errorf("self-test report: digest %q is not sha256:<64 hex>", r.Digest)
	}
	return nil
}
