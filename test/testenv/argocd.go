package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// ArgoCDHealthScript is the Lua health check of EdgeRollouts that the GitOps
// docs give Argo CD (config/gitops/argocd/argocd-cm-health.yaml).
func ArgoCDHealthScript() (string, error) {
	raw, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "gitops", "argocd", "argocd-cm-health.yaml"))
	if err != nil {
		return "", err
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		return "", err
	}
	script := cm.Data["resource.customizations.health.slmops.dev_EdgeRollout"]
	if script == "" {
		return "", errors.New("argocd-cm-health.yaml has no health script for slmops.dev_EdgeRollout")
	}
	return script, nil
}

// ArgoCDHealth runs an Argo CD health script on obj as Argo CD does, with
// gopher-lua, the interpreter Argo CD embeds: the object as a global table
// `obj`, the script returning {status, message}.
func ArgoCDHealth(script string, obj runtime.Object) (status, message string, err error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return "", "", err
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: false})
	defer L.Close()
	v, err := toLua(L, u)
	if err != nil {
		return "", "", err
	}
	L.SetGlobal("obj", v)
	if err := L.DoString(script); err != nil {
		return "", "", fmt.Errorf("the health script fails: %w", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the health script returned %s, not a table", L.Get(-1).Type())
	}
	return lua.LVAsString(ret.RawGetString("status")), lua.LVAsString(ret.RawGetString("message")), nil
}

// toLua converts a decoded JSON value into Lua values, as Argo CD's
// conversion does (objects and arrays as tables, arrays from index 1).
func toLua(L *lua.LState, v any) (lua.LValue, error) {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			lv, err := toLua(L, e)
			if err != nil {
				return nil, err
			}
			t.RawSetString(k, lv)
		}
		return t, nil
	case []any:
		t := L.NewTable()
		for _, e := range x {
			lv, err := toLua(L, e)
			if err != nil {
				return nil, err
			}
			t.Append(lv)
		}
		return t, nil
	case string:
		return lua.LString(x), nil
	case bool:
		return lua.LBool(x), nil
	case int64:
		return lua.LNumber(x), nil
	case float64:
		return lua.LNumber(x), nil
	case nil:
		return lua.LNil, nil
	default:
		return nil, fmt.Errorf("cannot convert %T to Lua", v)
	}
}
