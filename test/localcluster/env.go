package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// environment is the process's environment: a PATH, the pod's hostname, and
// the container's env with mount paths translated.
func (p *podProcess) environment(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container, mounts []mount) ([]string, error) {
	if len(ctr.EnvFrom) > 0 {
		return nil, errors.New("the process kubelet does not support envFrom")
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + pod.Name, "HOME=" + p.dir,
		// The in-cluster API server, as a kubelet sets it in every container:
		// here the local one, which the projected ca.crt verifies.
		"KUBERNETES_SERVICE_HOST=" + p.k.apiHost, "KUBERNETES_SERVICE_PORT=" + p.k.apiPort}
	if tmp := translate("/tmp", mounts); tmp != "/tmp" {
		env = append(env, "TMPDIR="+tmp)
	}
	for _, e := range ctr.Env {
		value, set, err := p.envValue(ctx, pod, e)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if set {
			// A later duplicate wins, as in a container.
			env = append(env, e.Name+"="+translate(value, mounts))
		}
	}
	return env, nil
}

// envValue resolves one env var; set is false for a missing optional source.
func (p *podProcess) envValue(ctx context.Context, pod *corev1.Pod, e corev1.EnvVar) (value string, set bool, err error) {
	from := e.ValueFrom
	switch {
	case from == nil:
		return e.Value, true, nil
	case from.FieldRef != nil:
		value, err := p.fieldRefValue(pod, from.FieldRef.FieldPath)
		return value, err == nil, err
	case from.ResourceFieldRef != nil:
		value, err := p.resourceFieldValue(pod, from.ResourceFieldRef)
		return value, err == nil, err
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		secret, err := p.k.clientset.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && ptr.Deref(ref.Optional, false) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %s: %w", ref.Name, err)
		}
		v, ok := secret.Data[ref.Key]
		if !ok && !ptr.Deref(ref.Optional, false) {
			return "", false, fmt.Errorf("secret %s has no key %s", ref.Name, ref.Key)
		}
		return string(v), ok, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := p.k.configMaps.ConfigMaps(pod.Namespace).Get(ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && ptr.Deref(ref.Optional, false) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %s: %w", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !ptr.Deref(ref.Optional, false) {
			return "", false, fmt.Errorf("configmap %s has no key %s", ref.Name, ref.Key)
		}
		return v, ok, nil
	}
	return "", false, errors.New("the process kubelet resolves fieldRef, resourceFieldRef, secretKeyRef and configMapKeyRef only")
}

// resourceFieldValue resolves a resourceFieldRef as a kubelet does: the
// named container's limit, or the node's allocatable amount when the
// container has none, divided by the divisor and rounded up.
func (p *podProcess) resourceFieldValue(pod *corev1.Pod, ref *corev1.ResourceFieldSelector) (string, error) {
	var res corev1.ResourceName
	switch ref.Resource {
	case "limits.memory":
		res = corev1.ResourceMemory
	case "limits.cpu":
		res = corev1.ResourceCPU
	default:
		return "", fmt.Errorf("the process kubelet resolves resourceFieldRef limits.memory and limits.cpu only, not %s", ref.Resource)
	}
	var ctr *corev1.Container
	for i := range pod.Spec.Containers {
		if c := &pod.Spec.Containers[i]; c.Name == ref.ContainerName {
			ctr = c
		}
	}
	if ctr == nil {
		return "", fmt.Errorf("resourceFieldRef names container %q, which the pod lacks", ref.ContainerName)
	}
	q, ok := ctr.Resources.Limits[res]
	if !ok {
		node, err := p.k.nodeLister.Get(pod.Spec.NodeName)
		if err != nil {
			return "", fmt.Errorf("node %s for resourceFieldRef %s: %w", pod.Spec.NodeName, ref.Resource, err)
		}
		if q, ok = node.Status.Allocatable[res]; !ok {
			return "", fmt.Errorf("node %s has no allocatable %s", pod.Spec.NodeName, res)
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if res == corev1.ResourceCPU {
		return strconv.FormatInt((q.MilliValue()+divisor.MilliValue()-1)/divisor.MilliValue(), 10), nil
	}
	return strconv.FormatInt((q.Value()+divisor.Value()-1)/divisor.Value(), 10), nil
}

// fieldRefValue resolves a fieldRef of env or a downwardAPI volume.
func (p *podProcess) fieldRefValue(pod *corev1.Pod, fieldPath string) (string, error) {
	switch fieldPath {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return p.ip, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	}
	return "", fmt.Errorf("the process kubelet does not resolve fieldRef %s", fieldPath)
}
