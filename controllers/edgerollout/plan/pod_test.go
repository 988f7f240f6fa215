package plan

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/test/testutil"
)

// TestHowAPodReads: what the analysis reads of an inferd pod: ready since
// its last transition, a waiting state that waiting will not fix, inferd's
// termination message once it restarted, and a Failed pod.
func TestHowAPodReads(t *testing.T) {
	created, readyAt := t0.Add(-time.Hour), t0.Add(-time.Minute)
	const why = "SelfTestFailed: golden prompt 1: 1.2 tokens/s, below 5"
	cases := map[string]struct {
		pod  *testutil.PodBuilder
		want Pod
	}{
		"a ready pod is ready since it became ready": {
			testutil.Pod("p", created).Ready(readyAt),
			Pod{Exists: true, Ready: true, Since: readyAt},
		},
		"a pod not ready yet is not failing": {
			testutil.Pod("p", created),
			Pod{Exists: true, Since: created},
		},
		"a crash loop is a failure, with inferd's reason in the message": {
			testutil.Pod("p", created).Waiting("CrashLoopBackOff", "back-off 40s").Terminated(3, why),
			Pod{Exists: true, Since: created, Failure: "CrashLoopBackOff", Message: "back-off 40s", Restarts: 3, Terminated: why},
		},
		"a restarted pod that is not crash-looping yet says why it ended": {
			testutil.Pod("p", created).Terminated(1, why),
			Pod{Exists: true, Since: created, Message: why, Restarts: 1, Terminated: why},
		},
		"waiting for an image pull to start is not a failure": {
			testutil.Pod("p", created).Waiting("ContainerCreating", ""),
			Pod{Exists: true, Since: created},
		},
		"a ready pod's self-test report is read": {
			testutil.Pod("p", created).Ready(readyAt).Annotate(config.ReportAnnotation, `{"passed":true,"reason":"Passed","decodeTokensPerSecond":12.5,"timeToFirstTokenSeconds":0.2}`),
			Pod{Exists: true, Ready: true, Since: readyAt, Report: &config.Report{Passed: true, Reason: "Passed", DecodeTokensPerSecond: 12.5, TimeToFirstTokenSeconds: 0.2}},
		},
		"an annotation that is not inferd's report is no report": {
			testutil.Pod("p", created).Ready(readyAt).Annotate(config.ReportAnnotation, `{"tokensPerSecond":1e9}`),
			Pod{Exists: true, Ready: true, Since: readyAt},
		},
		"a Failed pod fails with its message": {
			testutil.Pod("p", created).Failed("evicted: the node ran low on memory"),
			Pod{Exists: true, Since: created, Failure: slmopsv1alpha1.FailingPodFailed, Message: "evicted: the node ran low on memory"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ObservePod(tc.pod.Obj())); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
