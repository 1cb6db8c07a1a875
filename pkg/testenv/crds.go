package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs creates (or replaces) the CRDs in the given manifests and waits until the API
// server serves every version of them.
func (e *Env) InstallCRDs(ctx context.Context, paths ...string) error {
	client, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	var crds []*unstructured.Unstructured
	for _, path := range paths {
		objs, err := readManifests(path)
		if err != nil {
			return err
		}
		crds = append(crds, objs...)
	}
	for _, crd := range crds {
		if crd.GetKind() != "CustomResourceDefinition" {
			return fmt.Errorf("%s is a %s, not a CustomResourceDefinition", crd.GetName(), crd.GetKind())
		}
		_, err := client.Resource(crdResource).Create(ctx, crd, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var live *unstructured.Unstructured
			if live, err = client.Resource(crdResource).Get(ctx, crd.GetName(), metav1.GetOptions{}); err == nil {
				crd.SetResourceVersion(live.GetResourceVersion())
				_, err = client.Resource(crdResource).Update(ctx, crd, metav1.UpdateOptions{})
			}
		}
		if err != nil {
			return fmt.Errorf("installing CRD %s: %w", crd.GetName(), err)
		}
	}
	for _, crd := range crds {
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		for _, v := range versions {
			name, _, _ := unstructured.NestedString(v.(map[string]any), "name")
			gvr := schema.GroupVersionResource{Group: group, Version: name, Resource: plural}
			// Established in status is not enough: wait until a list is answered.
			if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				_, err := client.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
				return err == nil, nil
			}); err != nil {
				return fmt.Errorf("CRD %s is not served: %w", crd.GetName(), err)
			}
		}
	}
	return nil
}

// readManifests decodes every object of a multi-document YAML or JSON file.
func readManifests(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	objs, err := DecodeManifests(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}

// DecodeManifests decodes every object of a multi-document YAML or JSON stream, such as the
// output of `kubectl kustomize`.
func DecodeManifests(r io.Reader) ([]*unstructured.Unstructured, error) {
	decoder := yaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}
