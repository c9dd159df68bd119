package deploy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/flowwatch/flowwatch/model"
)

var update = flag.Bool("update", false, "rewrite kubernetes/flows-configmap.yaml from examples/flows (make deploy-flows)")

const k8sDir = "kubernetes"

// The namespace every object lives in (kustomization.yaml sets it too).
const k8sNamespace = "flowwatch"

// k8sObject is the envelope of every manifest; Spec is decoded per kind, strictly.
type k8sObject struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Type       string            `yaml:"type"`       // Secret
	Data       map[string]string `yaml:"data"`       // ConfigMap, Secret
	StringData map[string]string `yaml:"stringData"` // Secret
	Spec       yaml.Node         `yaml:"spec"`

	file string
	node *yaml.Node // the whole document
}

func (o *k8sObject) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", o.Kind, o.Metadata.Namespace, o.Metadata.Name, o.file)
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// intOrString is a Kubernetes IntOrString (a port number or name, a count or a percentage).
type intOrString string

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a number or a string", n.Line)
	}
	*v = intOrString(n.Value)
	return nil
}

type workloadSpec struct {
	Replicas             *int          `yaml:"replicas"`
	RevisionHistoryLimit *int          `yaml:"revisionHistoryLimit"`
	Selector             labelSelector `yaml:"selector"`
	Strategy             *struct {
		Type          string `yaml:"type"`
		RollingUpdate *struct {
			MaxSurge       intOrString `yaml:"maxSurge"`
			MaxUnavailable intOrString `yaml:"maxUnavailable"`
		} `yaml:"rollingUpdate"`
	} `yaml:"strategy"` // Deployment
	ServiceName         string `yaml:"serviceName"`         // StatefulSet
	PodManagementPolicy string `yaml:"podManagementPolicy"` // StatefulSet
	UpdateStrategy      *struct {
		Type string `yaml:"type"`
	} `yaml:"updateStrategy"` // StatefulSet
	BackoffLimit            *int        `yaml:"backoffLimit"`            // Job
	TTLSecondsAfterFinished *int        `yaml:"ttlSecondsAfterFinished"` // Job
	Template                podTemplate `yaml:"template"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     podSpec    `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int   `yaml:"terminationGracePeriodSeconds"`
	RestartPolicy                 string `yaml:"restartPolicy"`
	SecurityContext               *struct {
		RunAsNonRoot   bool `yaml:"runAsNonRoot"`
		RunAsUser      int  `yaml:"runAsUser"`
		RunAsGroup     int  `yaml:"runAsGroup"`
		FSGroup        int  `yaml:"fsGroup"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []struct {
		MaxSkew           int           `yaml:"maxSkew"`
		TopologyKey       string        `yaml:"topologyKey"`
		WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
		LabelSelector     labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []k8sVolume    `yaml:"volumes"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef     *keyRef `yaml:"secretKeyRef"`
			ConfigMapKeyRef  *keyRef `yaml:"configMapKeyRef"`
			ResourceFieldRef *struct {
				ContainerName string `yaml:"containerName"`
				Resource      string `yaml:"resource"`
				Divisor       string `yaml:"divisor"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []k8sVolumeMount `yaml:"volumeMounts"`
}

type k8sVolumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
	SubPath   string `yaml:"subPath"`
}

type keyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional bool   `yaml:"optional"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

type k8sVolume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name  string `yaml:"name"`
		Items []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
	} `yaml:"secret"`
	EmptyDir *struct {
		SizeLimit string `yaml:"sizeLimit"`
		Medium    string `yaml:"medium"`
	} `yaml:"emptyDir"`
}

type serviceSpec struct {
	Type                     string            `yaml:"type"`
	ClusterIP                string            `yaml:"clusterIP"`
	PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
	Selector                 map[string]string `yaml:"selector"`
	Ports                    []struct {
		Name        string      `yaml:"name"`
		Port        int         `yaml:"port"`
		TargetPort  intOrString `yaml:"targetPort"`
		Protocol    string      `yaml:"protocol"`
		AppProtocol string      `yaml:"appProtocol"`
	} `yaml:"ports"`
}

type hpaSpec struct {
	ScaleTargetRef struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Name       string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas *int `yaml:"minReplicas"`
	MaxReplicas int  `yaml:"maxReplicas"`
	Metrics     []struct {
		Type     string `yaml:"type"`
		Resource *struct {
			Name   string `yaml:"name"`
			Target struct {
				Type               string `yaml:"type"`
				AverageUtilization int    `yaml:"averageUtilization"`
			} `yaml:"target"`
		} `yaml:"resource"`
	} `yaml:"metrics"`
	Behavior *struct {
		ScaleUp   *hpaRules `yaml:"scaleUp"`
		ScaleDown *hpaRules `yaml:"scaleDown"`
	} `yaml:"behavior"`
}

type hpaRules struct {
	StabilizationWindowSeconds *int `yaml:"stabilizationWindowSeconds"`
	Policies                   []struct {
		Type          string `yaml:"type"`
		Value         int    `yaml:"value"`
		PeriodSeconds int    `yaml:"periodSeconds"`
	} `yaml:"policies"`
}

type pdbSpec struct {
	MinAvailable   *intOrString  `yaml:"minAvailable"`
	MaxUnavailable *intOrString  `yaml:"maxUnavailable"`
	Selector       labelSelector `yaml:"selector"`
}

// The API version each kind the manifests use must have.
var k8sAPIVersions = map[string]string{
	"Namespace":               "v1",
	"ConfigMap":               "v1",
	"Secret":                  "v1",
	"Service":                 "v1",
	"Deployment":              "apps/v1",
	"StatefulSet":             "apps/v1",
	"Job":                     "batch/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2",
	"PodDisruptionBudget":     "policy/v1",
}

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	configMapKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	cpuQuantity  = regexp.MustCompile(`^([0-9]+m|[0-9]+(\.[0-9]+)?)$`)
	memQuantity  = regexp.MustCompile(`^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$`)
	imagePinned  = regexp.MustCompile(`^[a-z0-9./-]+(:[A-Za-z0-9_.-]+)?(@sha256:[a-f0-9]{64})?$`)
)

// loadManifests reads every object of every YAML file under kubernetes/ except the
// kustomization, and returns them with the files they came from.
func loadManifests(t *testing.T) ([]*k8sObject, []string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []*k8sObject
	var names []string
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		names = append(names, filepath.Base(f))
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var n yaml.Node
			if err := dec.Decode(&n); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", f, i+1, err)
			}
			if len(n.Content) == 0 || n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null" {
				continue // an empty document
			}
			o := &k8sObject{file: filepath.Base(f)}
			if err := decodeNodeStrict(&n, o); err != nil {
				t.Fatalf("%s: document %d (line %d): %v", f, i+1, n.Line, err)
			}
			o.node = &n
			objs = append(objs, o)
		}
	}
	return objs, names
}

// manifests indexes the objects by kind and name.
type manifests struct {
	objs   []*k8sObject
	byKind map[string]map[string]*k8sObject
}

func (m manifests) get(kind, name string) *k8sObject { return m.byKind[kind][name] }

// resolver: a Service of the manifests by its short or namespaced name; any other cluster
// name (*.svc, *.svc.cluster.local) is outside the shape, deployed by its own chart, and
// documented as such; *.invalid is a placeholder.
func (m manifests) resolver() hostResolver {
	return func(h string) bool {
		if strings.HasSuffix(h, ".invalid") {
			return true
		}
		name, rest, dotted := strings.Cut(h, ".")
		if !dotted || rest == k8sNamespace || strings.HasPrefix(rest, k8sNamespace+".svc") {
			return m.get("Service", name) != nil
		}
		return strings.HasSuffix(rest, ".svc") || strings.HasSuffix(rest, ".svc.cluster.local")
	}
}

// selects says whether a selector picks the labels (every selector label present and equal).
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKubernetes parses every manifest and checks what each kind requires and every reference
// between the objects and the configurations they carry.
func TestKubernetes(t *testing.T) {
	objs, files := loadManifests(t)
	m := manifests{objs: objs, byKind: map[string]map[string]*k8sObject{}}
	for _, o := range objs {
		if want, ok := k8sAPIVersions[o.Kind]; !ok {
			t.Errorf("%s: kind %q is not one these tests know", o, o.Kind)
		} else if o.APIVersion != want {
			t.Errorf("%s: apiVersion %q, want %q", o, o.APIVersion, want)
		}
		if !dns1123Label.MatchString(o.Metadata.Name) {
			t.Errorf("%s: metadata.name %q is not a DNS-1123 label", o, o.Metadata.Name)
		}
		switch {
		case o.Kind == "Namespace" && o.Metadata.Name != k8sNamespace:
			t.Errorf("%s: want namespace %s", o, k8sNamespace)
		case o.Kind != "Namespace" && o.Metadata.Namespace != k8sNamespace:
			t.Errorf("%s: metadata.namespace %q, want %q", o, o.Metadata.Namespace, k8sNamespace)
		}
		if o.Metadata.Labels["app.kubernetes.io/part-of"] != "flowwatch" {
			t.Errorf("%s: label app.kubernetes.io/part-of=flowwatch missing", o)
		}
		if m.byKind[o.Kind] == nil {
			m.byKind[o.Kind] = map[string]*k8sObject{}
		}
		if prev := m.byKind[o.Kind][o.Metadata.Name]; prev != nil {
			t.Errorf("%s: defined twice (also in %s)", o, prev.file)
		}
		m.byKind[o.Kind][o.Metadata.Name] = o
		for k := range o.Data {
			if !configMapKey.MatchString(k) {
				t.Errorf("%s: key %q is not a valid ConfigMap key", o, k)
			}
		}
		for k := range o.StringData {
			if !configMapKey.MatchString(k) {
				t.Errorf("%s: key %q is not a valid Secret key", o, k)
			}
		}
	}
	if m.get("Namespace", k8sNamespace) == nil {
		t.Errorf("no Namespace %s", k8sNamespace)
	}
	checkKustomization(t, files)

	// Workloads.
	workloads := map[*k8sObject]*workloadSpec{}
	for _, kind := range []string{"Deployment", "StatefulSet", "Job"} {
		for _, o := range m.byKind[kind] {
			var spec workloadSpec
			if err := decodeNodeStrict(&o.Spec, &spec); err != nil {
				t.Errorf("%s: spec: %v", o, err)
				continue
			}
			workloads[o] = &spec
			checkPodTemplate(t, m, o, &spec)
		}
	}

	// Services select pods, and their target ports exist on them.
	for _, o := range m.byKind["Service"] {
		var spec serviceSpec
		if err := decodeNodeStrict(&o.Spec, &spec); err != nil {
			t.Errorf("%s: spec: %v", o, err)
			continue
		}
		if len(spec.Ports) == 0 {
			t.Errorf("%s: no ports", o)
		}
		var selected []*workloadSpec
		for w, ws := range workloads {
			if w.Kind != "Job" && selects(spec.Selector, ws.Template.Metadata.Labels) {
				selected = append(selected, ws)
			}
		}
		if len(selected) == 0 {
			t.Errorf("%s: selector %v matches no workload's pods", o, spec.Selector)
			continue
		}
		for _, p := range spec.Ports {
			if p.Port <= 0 || p.Name == "" {
				t.Errorf("%s: port %+v: want a name and a port", o, p)
			}
			for _, ws := range selected {
				if _, ok := containerPort(ws.Template.Spec.Containers, p.TargetPort); !ok {
					t.Errorf("%s: targetPort %q is not a port of the selected pods", o, p.TargetPort)
				}
			}
		}
	}

	// HorizontalPodAutoscalers scale a Deployment that leaves replicas to them.
	hpaMin := map[string]int{}
	for _, o := range m.byKind["HorizontalPodAutoscaler"] {
		var spec hpaSpec
		if err := decodeNodeStrict(&o.Spec, &spec); err != nil {
			t.Errorf("%s: spec: %v", o, err)
			continue
		}
		ref := spec.ScaleTargetRef
		target := m.get(ref.Kind, ref.Name)
		if target == nil || ref.APIVersion != k8sAPIVersions[ref.Kind] {
			t.Errorf("%s: scaleTargetRef %s %s/%s is not in the manifests", o, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		ws := workloads[target]
		if ws.Replicas != nil {
			t.Errorf("%s sets replicas, which %s owns: every apply would reset the scale", target, o)
		}
		if spec.MinReplicas == nil || *spec.MinReplicas < 2 || *spec.MinReplicas > spec.MaxReplicas {
			t.Errorf("%s: want 2 <= minReplicas <= maxReplicas (%v, %d)", o, spec.MinReplicas, spec.MaxReplicas)
			continue
		}
		hpaMin[target.Kind+"/"+target.Metadata.Name] = *spec.MinReplicas
		if len(spec.Metrics) == 0 {
			t.Errorf("%s: no metrics", o)
		}
		for _, mt := range spec.Metrics {
			if mt.Type != "Resource" || mt.Resource == nil {
				continue
			}
			if mt.Resource.Target.Type == "Utilization" {
				if u := mt.Resource.Target.AverageUtilization; u <= 0 || u > 100 {
					t.Errorf("%s: averageUtilization %d", o, u)
				}
				for _, c := range ws.Template.Spec.Containers {
					if c.Resources.Requests[mt.Resource.Name] == "" {
						t.Errorf("%s: scales on %s utilization, but container %s requests no %s", o, mt.Resource.Name, c.Name, mt.Resource.Name)
					}
				}
			}
		}
	}

	// PodDisruptionBudgets select a workload and leave room for one eviction.
	for _, o := range m.byKind["PodDisruptionBudget"] {
		var spec pdbSpec
		if err := decodeNodeStrict(&o.Spec, &spec); err != nil {
			t.Errorf("%s: spec: %v", o, err)
			continue
		}
		if (spec.MinAvailable == nil) == (spec.MaxUnavailable == nil) {
			t.Errorf("%s: set exactly one of minAvailable and maxUnavailable", o)
		}
		var target *k8sObject
		for w, ws := range workloads {
			if w.Kind != "Job" && selects(spec.Selector.MatchLabels, ws.Template.Metadata.Labels) {
				if target != nil {
					t.Errorf("%s: selects the pods of %s and %s", o, target, w)
				}
				target = w
			}
		}
		if target == nil {
			t.Errorf("%s: selector matches no workload", o)
			continue
		}
		if spec.MaxUnavailable != nil && (*spec.MaxUnavailable == "0" || *spec.MaxUnavailable == "0%") {
			t.Errorf("%s: maxUnavailable 0 blocks every node drain", o)
		}
		if spec.MinAvailable != nil {
			n, err := strconv.Atoi(string(*spec.MinAvailable))
			replicas := hpaMin[target.Kind+"/"+target.Metadata.Name]
			if r := workloads[target].Replicas; r != nil {
				replicas = *r
			}
			if err == nil && n >= replicas {
				t.Errorf("%s: minAvailable %d with %d replicas blocks every node drain", o, n, replicas)
			}
		}
	}
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		for _, o := range m.byKind[kind] {
			covered := false
			for _, p := range m.byKind["PodDisruptionBudget"] {
				var spec pdbSpec
				if decodeNodeStrict(&p.Spec, &spec) == nil && selects(spec.Selector.MatchLabels, workloads[o].Template.Metadata.Labels) {
					covered = true
				}
			}
			if !covered {
				t.Errorf("%s: no PodDisruptionBudget", o)
			}
		}
	}

	checkK8sFlowwatch(t, m, workloads)
}

// containerPort finds a port of the containers by name or number.
func containerPort(cs []k8sContainer, port intOrString) (int, bool) {
	for _, c := range cs {
		for _, p := range c.Ports {
			if string(port) == p.Name || string(port) == strconv.Itoa(p.ContainerPort) {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

// checkPodTemplate checks a workload's pod template: selector and labels, containers with a
// pinned image, requests, a locked-down security context, probes on their own ports, volumes
// that exist and whose ConfigMaps and keys exist, env from existing Secret and ConfigMap keys.
func checkPodTemplate(t *testing.T, m manifests, o *k8sObject, spec *workloadSpec) {
	t.Helper()
	tmpl := spec.Template
	switch o.Kind {
	case "Job":
		if r := tmpl.Spec.RestartPolicy; r != "OnFailure" && r != "Never" {
			t.Errorf("%s: restartPolicy %q, want OnFailure or Never", o, r)
		}
	default:
		if len(spec.Selector.MatchLabels) == 0 {
			t.Errorf("%s: spec.selector.matchLabels is required", o)
		} else if !selects(spec.Selector.MatchLabels, tmpl.Metadata.Labels) {
			t.Errorf("%s: selector %v does not match the template labels %v", o, spec.Selector.MatchLabels, tmpl.Metadata.Labels)
		}
	}
	if sc := tmpl.Spec.SecurityContext; sc == nil || !sc.RunAsNonRoot || sc.RunAsUser == 0 {
		t.Errorf("%s: pod securityContext must run as a non-root user", o)
	}
	if len(tmpl.Spec.Containers) == 0 {
		t.Errorf("%s: no containers", o)
	}
	volumes := map[string]k8sVolume{}
	for _, v := range tmpl.Spec.Volumes {
		if _, dup := volumes[v.Name]; dup {
			t.Errorf("%s: volume %s defined twice", o, v.Name)
		}
		volumes[v.Name] = v
		if v.ConfigMap != nil {
			cm := m.get("ConfigMap", v.ConfigMap.Name)
			if cm == nil {
				t.Errorf("%s: volume %s: ConfigMap %s is not in the manifests", o, v.Name, v.ConfigMap.Name)
				continue
			}
			for _, it := range v.ConfigMap.Items {
				if _, ok := cm.Data[it.Key]; !ok {
					t.Errorf("%s: volume %s: ConfigMap %s has no key %q", o, v.Name, cm.Metadata.Name, it.Key)
				}
			}
		}
	}
	mountedVolumes := map[string]bool{}
	for _, c := range tmpl.Spec.Containers {
		where := fmt.Sprintf("%s: container %s", o, c.Name)
		if c.Name == "" || !imagePinned.MatchString(c.Image) || !strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest") {
			t.Errorf("%s: want a name and an image pinned to a version (%q)", where, c.Image)
		}
		if !cpuQuantity.MatchString(c.Resources.Requests["cpu"]) || !memQuantity.MatchString(c.Resources.Requests["memory"]) {
			t.Errorf("%s: resources.requests needs cpu and memory quantities (%v)", where, c.Resources.Requests)
		}
		if !memQuantity.MatchString(c.Resources.Limits["memory"]) {
			t.Errorf("%s: resources.limits.memory is required (the memory limiter works from it)", where)
		}
		if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !sc.ReadOnlyRootFilesystem || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: securityContext: want allowPrivilegeEscalation false, readOnlyRootFilesystem, drop ALL", where)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			if p.Name == "" || len(p.Name) > 15 || p.ContainerPort <= 0 || p.ContainerPort > 65535 {
				t.Errorf("%s: port %+v: want a name (<= 15 chars) and a port", where, p)
			}
			if ports[p.Name] {
				t.Errorf("%s: port name %s repeated", where, p.Name)
			}
			ports[p.Name] = true
		}
		for name, p := range map[string]*k8sProbe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
			if p == nil {
				continue
			}
			if p.HTTPGet == nil || !strings.HasPrefix(p.HTTPGet.Path, "/") {
				t.Errorf("%s: %s: want an httpGet with a path", where, name)
				continue
			}
			if _, ok := containerPort([]k8sContainer{c}, p.HTTPGet.Port); !ok {
				t.Errorf("%s: %s: port %q is not a port of the container", where, name, p.HTTPGet.Port)
			}
		}
		if o.Kind != "Job" && (c.LivenessProbe == nil || c.ReadinessProbe == nil) {
			t.Errorf("%s: liveness and readiness probes are required", where)
		}
		for _, vm := range c.VolumeMounts {
			if _, ok := volumes[vm.Name]; !ok {
				t.Errorf("%s: volumeMount %s: no such volume", where, vm.Name)
			}
			mountedVolumes[vm.Name] = true
			if !path.IsAbs(vm.MountPath) {
				t.Errorf("%s: volumeMount %s: mountPath %q is not absolute", where, vm.Name, vm.MountPath)
			}
			if vm.SubPath != "" {
				t.Errorf("%s: volumeMount %s: subPath mounts never see ConfigMap updates", where, vm.Name)
			}
		}
		envNames := map[string]bool{}
		for _, e := range c.Env {
			if envNames[e.Name] {
				t.Errorf("%s: env %s set twice", where, e.Name)
			}
			envNames[e.Name] = true
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				s := m.get("Secret", r.Name)
				_, inData := s.dataKey(r.Key)
				if !r.Optional && (s == nil || !inData) {
					t.Errorf("%s: env %s: Secret %s key %q is not in the manifests (mark it optional or add it)", where, e.Name, r.Name, r.Key)
				}
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				cm := m.get("ConfigMap", r.Name)
				if _, ok := cm.dataKey(r.Key); !r.Optional && !ok {
					t.Errorf("%s: env %s: ConfigMap %s key %q is not in the manifests", where, e.Name, r.Name, r.Key)
				}
			}
			if r := e.ValueFrom.ResourceFieldRef; r != nil {
				if r.ContainerName != c.Name {
					t.Errorf("%s: env %s: resourceFieldRef.containerName %q is not this container", where, e.Name, r.ContainerName)
				}
				if _, ok := c.Resources.Limits[strings.TrimPrefix(r.Resource, "limits.")]; strings.HasPrefix(r.Resource, "limits.") && !ok {
					t.Errorf("%s: env %s: %s is not set in the container's limits", where, e.Name, r.Resource)
				}
			}
		}
		checkGoMemLimit(t, where, c)
		// $(VAR) in args expands only from the container's env.
		for _, a := range c.Args {
			for _, ref := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(a, -1) {
				if !envNames[ref[1]] {
					t.Errorf("%s: args use $(%s), which the container's env does not set", where, ref[1])
				}
			}
		}
	}
	for name := range volumes {
		if !mountedVolumes[name] {
			t.Errorf("%s: volume %s is mounted by no container", o, name)
		}
	}
}

// checkGoMemLimit: a flowwatch container with a memory limit tells the Go runtime about it,
// GOMEMLIMIT from the downward API (resourceFieldRef limits.memory, in bytes: divisor 1).
func checkGoMemLimit(t *testing.T, where string, c k8sContainer) {
	t.Helper()
	if _, limited := c.Resources.Limits["memory"]; !limited || !strings.HasPrefix(c.Image, "ghcr.io/flowwatch/") {
		return
	}
	for _, e := range c.Env {
		if e.Name != "GOMEMLIMIT" {
			continue
		}
		if e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil || e.ValueFrom.ResourceFieldRef.Resource != "limits.memory" ||
			(e.ValueFrom.ResourceFieldRef.Divisor != "" && e.ValueFrom.ResourceFieldRef.Divisor != "1") {
			t.Errorf("%s: GOMEMLIMIT must come from resourceFieldRef limits.memory (bytes)", where)
		}
		return
	}
	t.Errorf("%s: has a memory limit but no GOMEMLIMIT from it (the Go runtime would not know the limit)", where)
}

// dataKey looks a key up in a ConfigMap's or Secret's data (nil object: not found).
func (o *k8sObject) dataKey(key string) (string, bool) {
	if o == nil {
		return "", false
	}
	if v, ok := o.Data[key]; ok {
		return v, true
	}
	v, ok := o.StringData[key]
	return v, ok
}

// k8sMountTable is what a container sees: mount path -> read-only; plus the files ConfigMap
// volumes put there (path -> content).
func k8sMountTable(m manifests, pod podSpec, c k8sContainer) (mountTable, map[string]string) {
	mt := mountTable{}
	files := map[string]string{}
	vols := map[string]k8sVolume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		mt[vm.MountPath] = vm.ReadOnly
		v := vols[vm.Name]
		if v.ConfigMap == nil {
			continue
		}
		cm := m.get("ConfigMap", v.ConfigMap.Name)
		if cm == nil {
			continue
		}
		if len(v.ConfigMap.Items) == 0 {
			for k, val := range cm.Data {
				files[path.Join(vm.MountPath, k)] = val
			}
		}
		for _, it := range v.ConfigMap.Items {
			files[path.Join(vm.MountPath, it.Path)] = cm.Data[it.Key]
		}
	}
	return mt, files
}

// checkK8sQueueVolume checks that a collector's persistent queue lives on an emptyDir on disk:
// it outlives the container (a crash, an OOM kill), which the root file system does not, and
// a memory-backed one would count the queue against the memory limit it protects.
func checkK8sQueueVolume(t *testing.T, where string, pod podSpec, c k8sContainer, mt mountTable, cfg []byte) {
	t.Helper()
	dirs, err := queueDirectories(cfg)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	for _, dir := range dirs {
		target, _, ok := mt.find(dir)
		if !ok {
			continue // checkCollectorConfig reports it
		}
		i := slices.IndexFunc(c.VolumeMounts, func(vm k8sVolumeMount) bool { return vm.MountPath == target })
		vname := c.VolumeMounts[i].Name
		j := slices.IndexFunc(pod.Volumes, func(v k8sVolume) bool { return v.Name == vname })
		if j < 0 || pod.Volumes[j].EmptyDir == nil || pod.Volumes[j].EmptyDir.Medium == "Memory" {
			t.Errorf("%s: the queue folder %s is on volume %s, not an emptyDir on disk", where, dir, vname)
		}
	}
}

// checkK8sFlowwatch checks the flowwatch workloads against the configurations they mount:
// probes on the configured ports, the detector's shard index from the pod ordinal and
// replicas equal to the shard count, flows mounted, DSNs and URLs reaching deployed Services.
func checkK8sFlowwatch(t *testing.T, m manifests, workloads map[*k8sObject]*workloadSpec) {
	t.Helper()
	resolve := m.resolver()
	exampleFlows(t)
	seen := map[string]int{}
	for o, ws := range workloads {
		pod := ws.Template.Spec
		for _, c := range pod.Containers {
			if len(c.Args) == 0 || !slices.Contains(deployedCommands, c.Args[0]) {
				continue
			}
			cmd := c.Args[0]
			seen[cmd]++
			where := fmt.Sprintf("%s: container %s", o, c.Name)
			mt, files := k8sMountTable(m, pod, c)
			env := map[string]bool{}
			for _, e := range c.Env {
				env[e.Name] = true
			}
			var cfgData []byte
			if p, ok := flagValue(c.Args, "config"); ok {
				content, ok := files[p]
				if !ok {
					t.Errorf("%s: --config %s is not a file of a mounted ConfigMap", where, p)
					continue
				}
				cfgData = []byte(content)
			}
			portNamed := func(p *k8sProbe) int {
				if p == nil || p.HTTPGet == nil {
					return 0
				}
				n, _ := containerPort([]k8sContainer{c}, p.HTTPGet.Port)
				return n
			}
			switch cmd {
			case "collector":
				if o.Kind != "Deployment" {
					t.Errorf("%s: collectors are stateless: run them as a Deployment", o)
				}
				ports, errs := checkCollectorConfig(cfgData, mt, env, resolve)
				reportErrs(t, where+": collector config", errs)
				checkK8sQueueVolume(t, where, pod, c, mt, cfgData)
				for name, p := range map[string]*k8sProbe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
					if got := portNamed(p); got != ports.health {
						t.Errorf("%s: %s probe on port %d, the health_check extension listens on %d", where, name, got, ports.health)
					}
				}
				for _, want := range []int{ports.otlpGRPC, ports.otlpHTTP} {
					if _, ok := containerPort([]k8sContainer{c}, intOrString(strconv.Itoa(want))); !ok {
						t.Errorf("%s: OTLP port %d of the config is not a container port", where, want)
					}
				}
			case "detector":
				if o.Kind != "StatefulSet" {
					t.Errorf("%s: the detector shard index comes from the pod ordinal: run it as a StatefulSet", o)
				}
				cfg, port, errs := checkDetectorConfig(cfgData, mt, resolve)
				reportErrs(t, where+": detector config", errs)
				if ws.Replicas == nil || *ws.Replicas != cfg.Shard.Count {
					t.Errorf("%s: replicas %s, but shard.count is %d: instances of the missing shards would never be watched", o, fmtIntPtr(ws.Replicas), cfg.Shard.Count)
				}
				if ws.PodManagementPolicy != "Parallel" {
					t.Errorf("%s: podManagementPolicy %q: shards are independent, start them in Parallel", o, ws.PodManagementPolicy)
				}
				if svc := m.get("Service", ws.ServiceName); svc == nil {
					t.Errorf("%s: serviceName %q: no such Service", o, ws.ServiceName)
				} else {
					var spec serviceSpec
					if err := decodeNodeStrict(&svc.Spec, &spec); err == nil && (spec.ClusterIP != "None" || !selects(spec.Selector, ws.Template.Metadata.Labels)) {
						t.Errorf("%s: serviceName %s must be a headless Service selecting its pods", o, ws.ServiceName)
					}
				}
				shardFromOrdinal := false
				for _, e := range c.Env {
					if e.Name == "FLOWWATCH_SHARD_INDEX" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
						e.ValueFrom.FieldRef.FieldPath == "metadata.labels['apps.kubernetes.io/pod-index']" {
						shardFromOrdinal = true
					}
				}
				if !shardFromOrdinal {
					t.Errorf("%s: FLOWWATCH_SHARD_INDEX must come from the label apps.kubernetes.io/pod-index (downward API)", where)
				}
				if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
					t.Errorf("%s: livenessProbe must GET /healthz", where)
				}
				if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
					t.Errorf("%s: readinessProbe must GET /readyz", where)
				}
				for name, p := range map[string]*k8sProbe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
					if p != nil && portNamed(p) != port {
						t.Errorf("%s: %s probe on port %d, the API listens on %d", where, name, portNamed(p), port)
					}
				}
			case "schema":
				if o.Kind != "Job" {
					t.Errorf("%s: the schema is applied once: run it as a Job", o)
				}
				if cl, _ := flagValue(c.Args, "cluster"); cl != clusterName {
					t.Errorf("%s: --cluster %q, want %q", where, cl, clusterName)
				}
				if dsn, _ := flagValue(c.Args, "apply"); dsn == "" {
					t.Errorf("%s: no --apply DSN", where)
				}
			}
		}
	}
	for _, cmd := range []string{"collector", "detector", "schema"} {
		if seen[cmd] != 1 {
			t.Errorf("%d workloads run `flowwatch %s`, want 1", seen[cmd], cmd)
		}
	}
	// The DSN in the Secret reaches the cluster's native port.
	if s := m.get("Secret", "flowwatch"); s != nil {
		if dsn, ok := s.dataKey("clickhouse-dsn"); ok {
			if err := checkDSN(dsn, resolve); err != nil {
				t.Errorf("%s: clickhouse-dsn: %v", s, err)
			}
		}
	}
}

// checkKustomization: kustomization.yaml lists every manifest file exactly once.
func checkKustomization(t *testing.T, files []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Namespace  string   `yaml:"namespace"`
		Resources  []string `yaml:"resources"`
	}
	if err := decodeStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Kind != "Kustomization" || k.Namespace != k8sNamespace {
		t.Errorf("kustomization.yaml: kind %q namespace %q", k.Kind, k.Namespace)
	}
	got := slices.Clone(k.Resources)
	slices.Sort(got)
	want := slices.Clone(files)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %v, want every manifest file %v", got, want)
	}
}

// flowsConfigMap renders the flows ConfigMap from examples/flows: one key per file, the
// file's text verbatim.
func flowsConfigMap(t *testing.T) []byte {
	t.Helper()
	entries, err := os.ReadDir(flowsDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
	data := &yaml.Node{Kind: yaml.MappingNode}
	for _, n := range names {
		content, err := os.ReadFile(filepath.Join(flowsDir, n))
		if err != nil {
			t.Fatal(err)
		}
		data.Content = append(data.Content, str(n), &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.LiteralStyle, Value: string(content)})
	}
	labels := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		str("app.kubernetes.io/name"), str("flowwatch"),
		str("app.kubernetes.io/part-of"), str("flowwatch"),
	}}
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		str("apiVersion"), str("v1"),
		str("kind"), str("ConfigMap"),
		str("metadata"), {Kind: yaml.MappingNode, Content: []*yaml.Node{
			str("name"), str("flowwatch-flows"),
			str("namespace"), str(k8sNamespace),
			str("labels"), labels,
		}},
		str("data"), data,
	}}
	var buf bytes.Buffer
	buf.WriteString("# Generated from examples/flows by `make deploy-flows`; do not edit.\n")
	buf.WriteString("# Mounted at /etc/flowwatch/flows by the collectors and the detectors.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFlowsConfigMap keeps kubernetes/flows-configmap.yaml equal to examples/flows
// (make deploy-flows rewrites it).
func TestFlowsConfigMap(t *testing.T) {
	want := flowsConfigMap(t)
	file := filepath.Join(k8sDir, "flows-configmap.yaml")
	if *update {
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: examples/flows changed; run make deploy-flows", file)
	}
	if size := len(got); size > 1<<20 {
		t.Errorf("%s: %d bytes, over the 1 MiB a ConfigMap can hold", file, size)
	}
}

// TestFlowsConfigMapMounted checks that the flows ConfigMap, mounted the way the kubelet mounts
// it, loads as the same flows as examples/flows.
func TestFlowsConfigMapMounted(t *testing.T) {
	got, err := os.ReadFile(filepath.Join(k8sDir, "flows-configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm k8sObject
	if err := decodeStrict(got, &cm); err != nil {
		t.Fatal(err)
	}
	dir := kubeletConfigMapMount(t, cm.Data)
	set, err := model.Load(dir)
	if err != nil {
		t.Fatalf("flows as a mounted ConfigMap (..data symlinks, a hidden timestamped folder) do not load:\n%v", err)
	}
	want2 := exampleFlows(t)
	if !slices.Equal(set.Names(), want2.Names()) {
		t.Errorf("mounted ConfigMap loads flows %v, examples/flows has %v", set.Names(), want2.Names())
	}
	for _, n := range want2.Names() {
		if len(set.Versions(n)) != len(want2.Versions(n)) {
			t.Errorf("flow %s: %d versions from the ConfigMap, %d in examples/flows", n, len(set.Versions(n)), len(want2.Versions(n)))
		}
	}
}

// kubeletConfigMapMount lays data out as the kubelet mounts a ConfigMap volume: the files in a
// hidden timestamped folder, a ..data symlink to it, and one symlink per key through ..data.
func kubeletConfigMapMount(t *testing.T, data map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	ts := "..2026_11_26_00_00_00.000000001"
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, ts, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fmtIntPtr(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}
