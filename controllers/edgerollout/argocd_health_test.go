package edgerollout

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// TestArgoCDHealthScript runs the health check that the GitOps docs give
// Argo CD (config/gitops/argocd/argocd-cm-health.yaml) with gopher-lua, the
// interpreter Argo CD embeds, on rollouts whose status the operator's own
// code wrote: an Application is Healthy only when its rollouts are
// Completed.
func TestArgoCDHealthScript(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "gitops", "argocd", "argocd-cm-health.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		t.Fatal(err)
	}
	script := cm.Data["resource.customizations.health.slmops.dev_EdgeRollout"]
	if script == "" {
		t.Fatal("argocd-cm-health.yaml has no health script for slmops.dev_EdgeRollout")
	}
	tests := map[slmopsv1alpha1.RolloutPhase]string{
		slmopsv1alpha1.PhasePending:     "Progressing",
		slmopsv1alpha1.PhaseProgressing: "Progressing",
		slmopsv1alpha1.PhasePaused:      "Suspended",
		slmopsv1alpha1.PhaseCompleted:   "Healthy",
		slmopsv1alpha1.PhaseDegraded:    "Degraded",
		slmopsv1alpha1.PhaseRolledBack:  "Degraded",
		slmopsv1alpha1.PhaseAborted:     "Degraded",
	}
	for phase, want := range tests {
		r := &slmopsv1alpha1.EdgeRollout{
			TypeMeta:   metav1.TypeMeta{APIVersion: slmopsv1alpha1.GroupVersion.String(), Kind: "EdgeRollout"},
			ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default", Generation: 3},
		}
		setPhase(&r.Status, r.Generation, phase, "Why", "what happens", metav1.NewTime(time.Unix(1000, 0)))
		status, message := runHealth(t, script, r)
		if status != want {
			t.Errorf("Argo CD health of a %s rollout = %s (%s), want %s", phase, status, message, want)
		}
		if message == "" {
			t.Errorf("Argo CD health of a %s rollout has no message", phase)
		}
		// A status written for an older spec is not health yet.
		r.Generation = 4
		if status, _ := runHealth(t, script, r); status != "Progressing" {
			t.Errorf("Argo CD health of a %s rollout whose spec the operator has not seen = %s, want Progressing", phase, status)
		}
	}
	// Just created: no status at all.
	if status, _ := runHealth(t, script, &slmopsv1alpha1.EdgeRollout{ObjectMeta: metav1.ObjectMeta{Name: "new", Generation: 1}}); status != "Progressing" {
		t.Errorf("Argo CD health of a new rollout = %s, want Progressing", status)
	}
}

// runHealth runs an Argo CD health script on obj as Argo CD does: the
// object as a global table `obj`, the script returning {status, message}.
func runHealth(t *testing.T, script string, obj runtime.Object) (string, string) {
	t.Helper()
	u := toUnstructured(t, obj)
	L := lua.NewState(lua.Options{SkipOpenLibs: false})
	defer L.Close()
	L.SetGlobal("obj", toLua(L, u.Object))
	if err := L.DoString(script); err != nil {
		t.Fatalf("the health script fails: %v", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health script returned %s, not a table", L.Get(-1).Type())
	}
	return lua.LVAsString(ret.RawGetString("status")), lua.LVAsString(ret.RawGetString("message"))
}

// toLua converts a decoded JSON value into Lua values, as Argo CD's
// conversion does (objects and arrays as tables, arrays from index 1).
func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	default:
		panic(fmt.Sprintf("cannot convert %T to Lua", v))
	}
}
