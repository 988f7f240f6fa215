package localcluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// maxTokenAge is when a kubelet renews a projected token at the latest,
// whatever its expiry.
const maxTokenAge = 24 * time.Hour

// projectedVolume is a projected volume (the API server's ServiceAccount
// admission turns automountServiceAccountToken into one: a token, the
// kube-root-ca.crt ConfigMap's ca.crt and the namespace) and the folder it
// is written to, with the tokens issued for it by source.
type projectedVolume struct {
	source corev1.ProjectedVolumeSource
	dir    string
	tokens map[int]*issuedToken
}

// issuedToken is a service account token the TokenRequest API issued.
type issuedToken struct {
	token           string
	issued, expires time.Time
}

// tokenDue reports whether a token issued and expiring then must be renewed
// now: after 80% of its life or 24 hours, as a kubelet's token manager does.
func tokenDue(t *issuedToken, now time.Time) bool {
	if t == nil {
		return true
	}
	life := t.expires.Sub(t.issued)
	return !now.Before(t.expires.Add(-life/5)) || now.Sub(t.issued) > maxTokenAge
}

// writeProjected writes every source of a projected volume into its folder.
// A token is requested when there is none or it is due; a request that
// fails keeps the last token, as a kubelet does until it expires.
func (p *podProcess) writeProjected(ctx context.Context, pod *corev1.Pod, v *projectedVolume, now time.Time) error {
	if v.tokens == nil {
		v.tokens = map[int]*issuedToken{}
	}
	files := map[string][]byte{}
	for i, src := range v.source.Sources {
		switch {
		case src.ServiceAccountToken != nil:
			t := v.tokens[i]
			if tokenDue(t, now) {
				fresh, err := p.requestToken(ctx, pod, src.ServiceAccountToken, now)
				switch {
				case err == nil:
					t, v.tokens[i] = fresh, fresh
				case t == nil || !now.Before(t.expires):
					return err
				default:
					p.k.logf("%s: renew service account token (the old one holds until %s): %v", p, t.expires.Format(time.RFC3339), err)
				}
			}
			files[src.ServiceAccountToken.Path] = []byte(t.token)
		case src.ConfigMap != nil:
			cm, err := p.configMapFiles(corev1.ConfigMapVolumeSource{
				LocalObjectReference: src.ConfigMap.LocalObjectReference, Items: src.ConfigMap.Items, Optional: src.ConfigMap.Optional,
			})
			if err != nil {
				return err
			}
			for name, b := range cm {
				files[name] = b
			}
		case src.Secret != nil:
			s, err := p.secretFiles(ctx, src.Secret)
			if err != nil {
				return err
			}
			for name, b := range s {
				files[name] = b
			}
		case src.DownwardAPI != nil:
			for _, item := range src.DownwardAPI.Items {
				if item.FieldRef == nil {
					return fmt.Errorf("downwardAPI %s: the process kubelet resolves fieldRef only", item.Path)
				}
				value, err := p.fieldRefValue(pod, item.FieldRef.FieldPath)
				if err != nil {
					return fmt.Errorf("downwardAPI %s: %w", item.Path, err)
				}
				files[item.Path] = []byte(value)
			}
		default:
			return errors.New("the process kubelet projects serviceAccountToken, configMap, secret and downwardAPI sources only")
		}
	}
	return writeFiles(v.dir, files)
}

// requestToken asks the TokenRequest API for a token of the pod's service
// account bound to the pod, as a kubelet does: the token dies with the pod,
// and a TokenReview of it names the pod (and its node) in the user's extra.
func (p *podProcess) requestToken(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, now time.Time) (*issuedToken, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := p.k.clientset.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("request a token of service account %s/%s: %w", pod.Namespace, sa, err)
	}
	expires := tr.Status.ExpirationTimestamp.Time
	if expires.IsZero() {
		expires = now.Add(time.Duration(ptr.Deref(src.ExpirationSeconds, 3600)) * time.Second)
	}
	return &issuedToken{token: tr.Status.Token, issued: now, expires: expires}, nil
}

// secretFiles are the files of a projected secret: each key, or its items.
func (p *podProcess) secretFiles(ctx context.Context, src *corev1.SecretProjection) (map[string][]byte, error) {
	optional := ptr.Deref(src.Optional, false)
	files := map[string][]byte{}
	secret, err := p.k.clientset.CoreV1().Secrets(p.namespace).Get(ctx, src.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && optional:
		return files, nil
	case err != nil:
		return nil, fmt.Errorf("secret %s: %w", src.Name, err)
	}
	if len(src.Items) == 0 {
		for key, b := range secret.Data {
			files[key] = b
		}
	}
	for _, item := range src.Items {
		b, ok := secret.Data[item.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("secret %s has no key %s", src.Name, item.Key)
		}
		files[item.Path] = b
	}
	return files, nil
}
