package edgerollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/inferd/config"
)

const (
	// containerName is the inferd container.
	containerName = "inferd"
	// nonRootUID is distroless's "nonroot" user.
	nonRootUID = 65532
)

// Defaults are the operator's settings for what rollouts leave unset, from
// the manager's flags (and so from the Helm chart's values).
type Defaults struct {
	// InferdImage is the inferd image of rollouts that name none.
	InferdImage string
	// ModelCacheDir is the node folder (a hostPath) of the model cache.
	ModelCacheDir string
	// ModelCacheMaxBytes bounds the files of the node cache that no rollout
	// on the node pins; 0 keeps only pinned files.
	ModelCacheMaxBytes int64
	// InferdReports makes serving pods write their self-test report into
	// their own pod (config.ReportAnnotation): they run as the
	// InferdServiceAccount with its token mounted, in the namespaces where
	// the installer made it. Off, no inferd pod gets a token.
	InferdReports bool
}

// DefaultInferdImage is the inferd image when neither the rollout nor the
// operator names one.
const DefaultInferdImage = "ghcr.io/slmops/inferd:v0.1.0"

func (d Defaults) withFallbacks() Defaults {
	if d.InferdImage == "" {
		d.InferdImage = DefaultInferdImage
	}
	if d.ModelCacheDir == "" {
		d.ModelCacheDir = config.DefaultCacheDir
	}
	return d
}

// template is the rollout's inferd template with the operator's defaults
// filled in.
func (d Defaults) template(r *slmopsv1alpha1.EdgeRollout) slmopsv1alpha1.InferdTemplate {
	t := r.Spec.Template
	if t.Image == "" {
		t.Image = d.withFallbacks().InferdImage
	}
	return t
}

// revisionInputs is what a node would run, hashed into the revision.
type revisionInputs struct {
	Model       slmopsv1alpha1.SLMModelSpec   `json:"model"`
	Template    slmopsv1alpha1.InferdTemplate `json:"template"`
	Tolerations []corev1.Toleration           `json:"tolerations,omitempty"`
	// CacheDir only when not the default, so that revisions made before it
	// could be set keep their hash.
	CacheDir string `json:"cacheDir,omitempty"`
}

// computeRevision hashes the model and the inferd template (with the
// operator's defaults filled in): a new digest, a changed template or a new
// default inferd image is a new revision, and a new canary.
func computeRevision(r *slmopsv1alpha1.EdgeRollout, m *slmopsv1alpha1.SLMModel, d Defaults) string {
	in := revisionInputs{Model: m.Spec, Template: d.template(r), Tolerations: r.Spec.Tolerations}
	if dir := d.withFallbacks().ModelCacheDir; dir != config.DefaultCacheDir {
		in.CacheDir = dir
	}
	b, _ := json.Marshal(in)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}

// daemonSetName is the DaemonSet of one revision of a rollout.
func daemonSetName(rollout, revision string) string {
	name := rollout
	if len(name) > 52 {
		name = strings.TrimRight(name[:52], "-.")
	}
	return name + "-" + revision
}

// inferdConfig is the Config that the inferd pods of m get.
func inferdConfig(r *slmopsv1alpha1.EdgeRollout, m *slmopsv1alpha1.SLMModel, a plan.Artifact) config.Config {
	spec := m.Spec
	c := config.Config{
		Model: config.Model{
			Name: m.Name, Digest: a.Digest, Quantization: string(a.Quantization),
			Architecture: spec.Architecture, SizeBytes: ptr.Deref(a.SizeBytes, 0),
		},
		Runtime: config.Runtime{
			ContextLength:         spec.Runtime.ContextLength,
			Threads:               ptr.Deref(spec.Runtime.Threads, 0),
			MaxConcurrentRequests: spec.Runtime.MaxConcurrentRequests,
			CPUPolicy:             string(spec.Runtime.CPUPolicy),
		},
		Port:     r.Spec.Template.Port,
		CacheDir: config.DefaultCacheDir,
	}
	if h := a.Source.HTTP; h != nil {
		c.Model.URL, c.Model.AllowInsecureHTTP, c.Model.CABundle = h.URL, h.AllowInsecureHTTP, h.CABundle
	}
	if o := a.Source.OCI; o != nil {
		c.Model.OCI, c.Model.AllowInsecureHTTP = o.Reference, o.AllowInsecureHTTP
	}
	if st := spec.SelfTest; st != nil {
		c.SelfTest = &config.SelfTest{MinTokensPerSecond: st.MinTokensPerSecond}
		if st.MaxTimeToFirstToken != nil {
			c.SelfTest.MaxTimeToFirstToken = st.MaxTimeToFirstToken.Duration
		}
		if st.Timeout != nil {
			c.SelfTest.Timeout = st.Timeout.Duration
		}
		for _, p := range st.Prompts {
			cp := config.Prompt{Prompt: p.Prompt, MaxTokens: p.MaxTokens, ExpectContains: p.ExpectContains, ExpectRegex: p.ExpectRegex}
			if p.ExpectJSONSchema != nil {
				cp.ExpectJSONSchema = append(json.RawMessage(nil), p.ExpectJSONSchema.Raw...)
			}
			c.SelfTest.Prompts = append(c.SelfTest.Prompts, cp)
		}
	}
	return c
}

// invalidConfigError is a config that inferd would refuse at start: the
// operator reports it instead of making a DaemonSet whose pods crash-loop.
type invalidConfigError struct {
	artifact string
	err      error
}

func (e *invalidConfigError) Error() string {
	if e.artifact == slmopsv1alpha1.DefaultVariant {
		return e.err.Error()
	}
	return fmt.Sprintf("variant %s: %v", e.artifact, e.err)
}

func (e *invalidConfigError) Unwrap() error { return e.err }

// encodeValid checks cfg as inferd will (config.Validate) and encodes it.
func encodeValid(cfg config.Config, a plan.Artifact) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", &invalidConfigError{artifact: a.Name, err: err}
	}
	return cfg.Encode()
}

// configError is why the inferd config of some artifact of the current
// revision is invalid, empty when every one is valid. It checks the configs
// that the act step would encode (serving, and stager with staging on), so
// it checks exactly what inferd gets.
func configError(r *slmopsv1alpha1.EdgeRollout, m *slmopsv1alpha1.SLMModel, arts []plan.Artifact, d Defaults) string {
	var msgs []string
	for _, a := range arts {
		configs := []config.Config{servingConfig(r, m, a, d)}
		if r.Spec.Distribution.Staging != nil {
			configs = append(configs, stagerConfig(r, m, a, d))
		}
		for _, cfg := range configs {
			if _, err := encodeValid(cfg, a); err != nil {
				msgs = append(msgs, err.Error())
				break
			}
		}
	}
	return strings.Join(msgs, "; ")
}

// buildDaemonSet is the DaemonSet that runs revision of r on the nodes whose
// cohort label names that revision. Its template never changes: a change is a
// new revision and so a new DaemonSet, which is how a promoted canary becomes
// stable without a second restart.
func buildDaemonSet(r *slmopsv1alpha1.EdgeRollout, m *slmopsv1alpha1.SLMModel, revision string, a plan.Artifact, d Defaults) (*appsv1.DaemonSet, error) {
	encoded, err := encodeValid(servingConfig(r, m, a, d), a)
	if err != nil {
		return nil, err
	}
	return inferdDaemonSet(r, m, revision, a, d, encoded), nil
}

// servingConfig is the inferd config of the serving pods of artifact a.
func servingConfig(r *slmopsv1alpha1.EdgeRollout, m *slmopsv1alpha1.SLMModel, a plan.Artifact, d Defaults) config.Config {
	cfg := inferdConfig(r, m, a)
	cfg.Cache = cacheConfig(r, d)
	cfg.Report.Enabled = d.InferdReports
	if r.Spec.Distribution.PeerSharing != nil {
		// Serving pods share their verified file with the site too, and
		// read the peer directory when they have to fetch.
		cfg.Peers.Serve, cfg.Peers.File = true, peersMountPath+"/"+config.PeerDirectoryKey
	}
	return cfg
}

// stagerConfig is the inferd config of the stager pods of artifact a:
// stage mode (fetch and verify, no model loaded, no self-test), the
// rollout's share of the download budget and the disk headroom.
func stagerConfig(r *slmopsv1alpha1.EdgeRollout, m *slmopsv1alpha1.SLMModel, a plan.Artifact, d Defaults) config.Config {
	dist := r.Spec.Distribution
	cfg := inferdConfig(r, m, a)
	cfg.Stage = true
	cfg.SelfTest = nil
	cfg.Cache = cacheConfig(r, d)
	if dist.PeerSharing != nil {
		cfg.Peers.Serve, cfg.Peers.File = true, peersMountPath+"/"+config.PeerDirectoryKey
	}
	if s := dist.Staging; s != nil && s.MaxBytesPerSecond != nil {
		cfg.Download.BytesPerSecond = max(s.MaxBytesPerSecond.Value()/int64(max(s.MaxConcurrentNodes, 1)), 1024)
	}
	cfg.Download.DiskHeadroomBytes = plan.BytesOf(dist.Fit.DiskHeadroom)
	return cfg
}

// inferdDaemonSet is the serving DaemonSet of revision's artifact a, whose
// inferd gets the config encoded.
func inferdDaemonSet(r *slmopsv1alpha1.EdgeRollout, m *slmopsv1alpha1.SLMModel, revision string, a plan.Artifact, d Defaults, encoded string) *appsv1.DaemonSet {
	sharing := r.Spec.Distribution.PeerSharing != nil
	t := d.template(r)
	cacheDir := d.withFallbacks().ModelCacheDir
	labels := map[string]string{
		slmopsv1alpha1.NameLabel:      slmopsv1alpha1.NameInferd,
		slmopsv1alpha1.InstanceLabel:  r.Name,
		slmopsv1alpha1.ComponentLabel: slmopsv1alpha1.ComponentModelServer,
		slmopsv1alpha1.ManagedByLabel: slmopsv1alpha1.ManagedByValue,
		slmopsv1alpha1.RolloutLabel:   r.Name,
		slmopsv1alpha1.RevisionLabel:  revision,
		slmopsv1alpha1.VariantLabel:   a.Name,
	}
	env := []corev1.EnvVar{
		{Name: config.EnvConfig, Value: encoded},
		{Name: config.EnvNodeName, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		// The memory inferd may use (its limit, or the node's allocatable
		// memory without one): it checks the model's estimate against it
		// before it loads the model.
		{Name: config.EnvMemoryLimit, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
			ContainerName: containerName, Resource: "limits.memory", Divisor: resource.MustParse("1")}}},
	}
	if h := a.Source.HTTP; h != nil && h.SecretRef != nil {
		env = append(env, corev1.EnvVar{Name: config.EnvAuthorization, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: h.SecretRef.Name}, Key: slmopsv1alpha1.HTTPAuthorizationKey},
		}})
	}
	if o := a.Source.OCI; o != nil && o.PullSecretRef != nil {
		env = append(env, corev1.EnvVar{Name: config.EnvRegistryAuth, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: o.PullSecretRef.Name}, Key: corev1.DockerConfigJsonKey},
		}})
	}
	if ref := t.APITokenSecretRef; ref != nil {
		env = append(env, corev1.EnvVar{Name: config.EnvAPIToken, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref.DeepCopy()}})
	}
	env = append(env, t.Env...)
	resources := *m.Spec.Runtime.Resources.DeepCopy()
	if t.Resources != nil {
		for k, v := range t.Resources.Requests {
			if resources.Requests == nil {
				resources.Requests = corev1.ResourceList{}
			}
			resources.Requests[k] = v
		}
		for k, v := range t.Resources.Limits {
			if resources.Limits == nil {
				resources.Limits = corev1.ResourceList{}
			}
			resources.Limits[k] = v
		}
	}
	port := intstr.FromString("http")
	pullSecrets := append([]corev1.LocalObjectReference(nil), t.ImagePullSecrets...)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: artifactDaemonSetName(r.Name, revision, a.Name), Namespace: r.Namespace, Labels: labels,
			Annotations: map[string]string{slmopsv1alpha1.ModelDigestAnnotation: a.Digest},
		},
		Spec: appsv1.DaemonSetSpec{
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{slmopsv1alpha1.RolloutLabel: r.Name, slmopsv1alpha1.RevisionLabel: revision}},
			MinReadySeconds:      ptr.Deref(r.Spec.Strategy.Canary.MinReadySeconds, 0),
			RevisionHistoryLimit: ptr.To[int32](1),
			UpdateStrategy:       appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector:                  map[string]string{slmopsv1alpha1.CohortLabel(r.Namespace, r.Name): revision},
					Affinity:                      affinity(a),
					Tolerations:                   r.Spec.Tolerations,
					PriorityClassName:             t.PriorityClassName,
					ImagePullSecrets:              pullSecrets,
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](30),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](nonRootUID),
						RunAsGroup:     ptr.To[int64](nonRootUID),
						FSGroup:        ptr.To[int64](nonRootUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            containerName,
						Image:           t.Image,
						ImagePullPolicy: t.ImagePullPolicy,
						Env:             env,
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: t.Port, Protocol: corev1.ProtocolTCP}},
						Resources:       resources,
						// Ready only when the verified model is loaded and its
						// self-test passed: this is what promotes a canary step.
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: port}},
							PeriodSeconds: 5, FailureThreshold: 2,
						},
						// Alive while downloading or loading: a long download is
						// not a reason to restart.
						LivenessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: port}},
							PeriodSeconds: 10, FailureThreshold: 6,
						},
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsNonRoot:             ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "model-cache", MountPath: config.DefaultCacheDir},
							{Name: "tmp", MountPath: "/tmp"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "model-cache", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
							Path: cacheDir, Type: ptr.To(corev1.HostPathDirectoryOrCreate),
						}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
	if sharing {
		addPeersVolume(r, &ds.Spec.Template.Spec)
	}
	addCacheVolume(r, &ds.Spec.Template.Spec)
	if d.InferdReports {
		addReportAccess(&ds.Spec.Template.Spec)
	}
	return ds
}

// addReportAccess lets a serving pod write its self-test report: it runs as
// InferdServiceAccount with the token mounted (a bound token, which names
// the pod; the admission policy lets it change only the report annotation
// of that pod), and learns its own name and namespace from the downward API.
func addReportAccess(spec *corev1.PodSpec) {
	spec.ServiceAccountName = slmopsv1alpha1.InferdServiceAccount
	spec.AutomountServiceAccountToken = ptr.To(true)
	c := &spec.Containers[0]
	c.Env = append(c.Env,
		corev1.EnvVar{Name: config.EnvPodName, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		corev1.EnvVar{Name: config.EnvPodNamespace, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
	)
}

// removeReportAccess undoes addReportAccess: a stager runs no self-test and
// gets no token.
func removeReportAccess(spec *corev1.PodSpec) {
	spec.ServiceAccountName = ""
	spec.AutomountServiceAccountToken = ptr.To(false)
	c := &spec.Containers[0]
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == config.EnvPodName || e.Name == config.EnvPodNamespace
	})
}

// addPeersVolume mounts the rollout's peer directory; optional, so that a
// pod starts before the operator wrote it.
func addPeersVolume(r *slmopsv1alpha1.EdgeRollout, spec *corev1.PodSpec) {
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: peersVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: slmopsv1alpha1.PeersConfigMapName(r.Name)}, Optional: ptr.To(true),
	}}})
	c := &spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: peersVolume, MountPath: peersMountPath, ReadOnly: true})
}

// buildStageDaemonSet is the stager DaemonSet of one artifact of revision:
// inferd in stage mode on the nodes whose stage label names the revision. It
// fetches and verifies the model into the node cache (the same hostPath as
// the serving pods'), within the rollout's download budget, and serves it to
// the site's peers; it is ready once the file is in place, and it loads no
// model, so it asks for little memory.
func buildStageDaemonSet(r *slmopsv1alpha1.EdgeRollout, m *slmopsv1alpha1.SLMModel, revision string, a plan.Artifact, d Defaults) (*appsv1.DaemonSet, error) {
	encoded, err := encodeValid(stagerConfig(r, m, a, d), a)
	if err != nil {
		return nil, err
	}
	// The serving pods' shape (locked down, the node cache, the pins, the
	// peers) with the stager's config, labels, nodes and resources.
	ds := inferdDaemonSet(r, m, revision, a, d, encoded)

	labels := map[string]string{
		slmopsv1alpha1.NameLabel:          slmopsv1alpha1.NameInferd,
		slmopsv1alpha1.InstanceLabel:      r.Name,
		slmopsv1alpha1.ComponentLabel:     slmopsv1alpha1.ComponentModelStager,
		slmopsv1alpha1.ManagedByLabel:     slmopsv1alpha1.ManagedByValue,
		slmopsv1alpha1.RolloutLabel:       r.Name,
		slmopsv1alpha1.StageRevisionLabel: revision,
		slmopsv1alpha1.VariantLabel:       a.Name,
	}
	ds.Name = stageDaemonSetName(r.Name, revision, a.Name)
	ds.Labels = labels
	ds.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{slmopsv1alpha1.RolloutLabel: r.Name, slmopsv1alpha1.StageRevisionLabel: revision, slmopsv1alpha1.VariantLabel: a.Name}}
	ds.Spec.MinReadySeconds = 0
	pt := &ds.Spec.Template
	pt.Labels = labels
	pt.Spec.NodeSelector = map[string]string{slmopsv1alpha1.StageLabel(r.Namespace, r.Name): revision}
	// A stager makes way for serving pods under memory pressure.
	pt.Spec.PriorityClassName = ""
	removeReportAccess(&pt.Spec)
	c := &pt.Spec.Containers[0]
	// A stager loads no model: the serving pod checks the memory.
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == config.EnvMemoryLimit })
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
	}
	// A stager is alive while it downloads; it exits by itself when it
	// cannot stage.
	c.LivenessProbe = nil
	c.ReadinessProbe.PeriodSeconds = 2
	sum := sha256.Sum256([]byte(encoded + "/" + c.Image))
	ds.Annotations[slmopsv1alpha1.StageConfigAnnotation] = hex.EncodeToString(sum[:])[:16]
	return ds, nil
}

// errStableMissing says that a revision's DaemonSet is gone and cannot be
// rebuilt: only the current spec's revision can be.
func errStableMissing(rev string) error {
	return fmt.Errorf("the DaemonSet of revision %s is missing and the current spec describes another revision; it cannot be rebuilt", rev)
}

// affinity keeps an artifact's pods on its nodes; nil for a model without
// variants.
func affinity(a plan.Artifact) *corev1.Affinity {
	if a.Affinity == nil {
		return nil
	}
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: a.Affinity}}
}
