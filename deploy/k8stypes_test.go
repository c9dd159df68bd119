package deploy

import (
	"fmt"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	sigsyaml "sigs.k8s.io/yaml"
)

// typedObject returns an empty object of the Kubernetes API type a kind decodes into.
func typedObject(kind string) (any, error) {
	switch kind {
	case "Namespace":
		return &corev1.Namespace{}, nil
	case "ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "Secret":
		return &corev1.Secret{}, nil
	case "Service":
		return &corev1.Service{}, nil
	case "Deployment":
		return &appsv1.Deployment{}, nil
	case "StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "Job":
		return &batchv1.Job{}, nil
	case "HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	}
	return nil, fmt.Errorf("kind %q has no API type here", kind)
}

// TestKubernetesAPITypes decodes every manifest strictly into its k8s.io/api type, the way
// the API server's decoder reads it: a field the real type does not have, a value of the wrong
// type or a malformed quantity fails. (TestKubernetes then checks the semantics.)
func TestKubernetesAPITypes(t *testing.T) {
	objs, _ := loadManifests(t)
	if len(objs) == 0 {
		t.Fatal("no manifests")
	}
	for _, o := range objs {
		typed, err := typedObject(o.Kind)
		if err != nil {
			t.Errorf("%s: %v", o, err)
			continue
		}
		data, err := yaml.Marshal(o.node)
		if err != nil {
			t.Fatalf("%s: re-encode: %v", o, err)
		}
		if err := sigsyaml.UnmarshalStrict(data, typed); err != nil {
			t.Errorf("%s: not a valid %s %s: %v", o, o.APIVersion, o.Kind, err)
			continue
		}
		var pod *corev1.PodSpec
		switch v := typed.(type) {
		case *appsv1.Deployment:
			pod = &v.Spec.Template.Spec
		case *appsv1.StatefulSet:
			pod = &v.Spec.Template.Spec
		case *batchv1.Job:
			pod = &v.Spec.Template.Spec
		}
		if pod == nil {
			continue
		}
		for _, c := range pod.Containers {
			for name, q := range map[string]resource.Quantity{
				"requests.cpu": c.Resources.Requests[corev1.ResourceCPU], "requests.memory": c.Resources.Requests[corev1.ResourceMemory],
				"limits.memory": c.Resources.Limits[corev1.ResourceMemory],
			} {
				if q.IsZero() {
					t.Errorf("%s: container %s: resources.%s is not set", o, c.Name, name)
				}
			}
			if lim, req := c.Resources.Limits[corev1.ResourceMemory], c.Resources.Requests[corev1.ResourceMemory]; lim.Cmp(req) < 0 {
				t.Errorf("%s: container %s: memory limit %s below the request %s", o, c.Name, lim.String(), req.String())
			}
		}
	}
}
