package config

import (
	"regexp"
	"strings"
)

// The termination message is how inferd tells the operator why it stopped:
// one line "Reason: message" in the container's terminationMessagePath, which
// the kubelet copies into the pod's status. inferd writes it with
// FormatTermination and the operator reads it with ParseTermination, so the
// two sides cannot drift apart.

// Reasons inferd reports in /status and its termination message.
const (
	// ReasonFetchFailed: the model could not be fetched after the retries
	// (a transient failure: the network, a 5xx, a timeout).
	ReasonFetchFailed = "FetchFailed"
	// ReasonFetchRetrying: a fetch round failed; inferd tries again.
	ReasonFetchRetrying = "FetchRetrying"
	// ReasonOriginRejected: the origin answered that it will not serve the
	// model (404/410 not found, 401/403 denied): a failure of the origin or
	// of the SLMModel, the same on every node, which retrying cannot fix.
	ReasonOriginRejected = "OriginRejected"
	// ReasonDigestMismatch: the origin's bytes do not hash to spec.digest.
	ReasonDigestMismatch = "DigestMismatch"
	// ReasonInvalidModel: the file is not a GGUF this build can read.
	ReasonInvalidModel = "InvalidModel"
	// ReasonUnsupported: a valid GGUF that this engine cannot run.
	ReasonUnsupported = "UnsupportedModel"
	// ReasonSelfTestFailed: the model loaded but failed its self-test.
	ReasonSelfTestFailed = "SelfTestFailed"
	// ReasonInsufficientDisk: the cache's filesystem cannot hold the model
	// and the headroom.
	ReasonInsufficientDisk = "InsufficientDisk"
	// ReasonInsufficientMemory: the model's estimated memory (its weights
	// and the KV cache of every sequence at the context length) is more than
	// the container may use.
	ReasonInsufficientMemory = "InsufficientMemory"
	// ReasonInvalidConfig: INFERD_CONFIG failed Validate.
	ReasonInvalidConfig = "InvalidConfig"
)

// OriginFailure reports whether reason is a failure of the origin itself
// (the same answer for every node that asks): one node learning it is enough.
func OriginFailure(reason string) bool {
	return reason == ReasonOriginRejected || reason == ReasonDigestMismatch
}

// MaxTerminationMessage is what the kubelet keeps of a termination message.
const MaxTerminationMessage = 4096

// FormatTermination is the termination message for reason and message,
// cut to what the kubelet keeps.
func FormatTermination(reason, message string) string {
	msg := reason + ": " + strings.ReplaceAll(strings.TrimSpace(message), "\n", " ")
	if len(msg) > MaxTerminationMessage-1 {
		msg = msg[:MaxTerminationMessage-4] + "..."
	}
	return msg
}

var terminationPattern = regexp.MustCompile(`^([A-Z][A-Za-z]{2,63}): (.*)$`)

// ParseTermination reads a termination message written by FormatTermination;
// ok is false when msg is not one (a crash's output, or nothing).
func ParseTermination(msg string) (reason, message string, ok bool) {
	m := terminationPattern.FindStringSubmatch(strings.TrimSpace(msg))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}
