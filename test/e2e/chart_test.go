package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	yaml "go.yaml.in/yaml/v3"

	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
	"github.com/mumoshu/aws-secret-controller/test/testutil"
)

// These tests hold charts/aws-secret-controller to what chart users and maintainers check: helm
// lint, renders with several values files, the values schema refusing wrong values, the default
// render agreeing with the kustomize install, and the API server accepting what it renders.

func chartDir() string { return filepath.Join(repoRoot, "charts", "aws-secret-controller") }

// helm runs bin/helm and returns its output.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return testutil.Helm(t, env.BinDir, args...)
}

// renderChart renders the chart as release name in namespace with the given values (YAML).
func renderChart(t *testing.T, name, namespace, values string, extra ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	file := valuesFile(t, values)
	out, err := helm(t, append([]string{"template", name, chartDir(), "--namespace", namespace, "--values", file}, extra...)...)
	if err != nil {
		return nil, err
	}
	objs, err := testenv.DecodeManifests(strings.NewReader(out))
	if err != nil {
		t.Fatalf("decoding helm template's output: %v", err)
	}
	return objs, nil
}

// valuesFile writes values to a file whose path has no comma (helm splits --values at commas;
// t.TempDir's path carries the subtest's name).
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	f, err := os.CreateTemp("", "values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	if _, err := f.WriteString(values); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func mustRenderChart(t *testing.T, name, namespace, values string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := renderChart(t, name, namespace, values)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	return objs
}

func TestChartLint(t *testing.T) {
	for name, values := range map[string]string{
		"defaults":   "",
		"namespaced": "namespaceScoped: true\n",
		"everything": "serviceMonitor: {enabled: true}\nprometheusRule: {enabled: true}\ngrafanaDashboard: {enabled: true}\nimage: {digest: sha256:" + strings.Repeat("a", 64) + "}\nserviceAccount: {annotations: {eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/x}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			file := valuesFile(t, values)
			if out, err := helm(t, "lint", "--strict", chartDir(), "--values", file); err != nil {
				t.Errorf("helm lint --strict: %v\n%s", err, out)
			}
		})
	}
}

// TestChartCRDIsTheManifestsCRD: the chart installs the CRD manifests/crd installs (hack/update-
// codegen.sh copies it; hack/verify-codegen.sh fails when they differ).
func TestChartCRDIsTheManifestsCRD(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join(chartDir(), "crds", "mumoshu.github.io_awssecrets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := readRepoFile(t, "manifests", "crd", "mumoshu.github.io_awssecrets.yaml"); string(chart) != want {
		t.Error("charts/aws-secret-controller/crds differs from manifests/crd: run hack/update-codegen.sh")
	}
	objs := mustRenderChart(t, "aws-secret-controller", "x", "")
	if len(ofKind(objs, "CustomResourceDefinition")) != 0 {
		t.Error("the CRD is rendered as a template: Helm would delete it on uninstall")
	}
}

func readRepoFile(t *testing.T, path ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{repoRoot}, path...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rbacRules returns the rules of the (Cluster)Role named name in objs.
func rbacRules(t *testing.T, objs []*unstructured.Unstructured, kind, name string) []rbacv1.PolicyRule {
	t.Helper()
	for _, obj := range ofKind(objs, kind) {
		if obj.GetName() == name {
			var r rbacv1.ClusterRole
			fromUnstructured(t, obj, &r)
			return r.Rules
		}
	}
	t.Errorf("no %s/%s in %s", kind, name, describe(objs))
	return nil
}

func controllerContainer(t *testing.T, d appsv1.Deployment) corev1.Container {
	t.Helper()
	i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "controller" })
	if i < 0 {
		t.Fatalf("Deployment/%s has no container controller", d.Name)
	}
	return d.Spec.Template.Spec.Containers[i]
}

// effectiveEnv is a container's environment as the controller sees it: env, with envFrom
// ConfigMaps of objs resolved.
func effectiveEnv(t *testing.T, c corev1.Container, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, from := range c.EnvFrom {
		for _, obj := range ofKind(objs, "ConfigMap") {
			if from.ConfigMapRef != nil && strings.HasPrefix(obj.GetName(), from.ConfigMapRef.Name) {
				var cm corev1.ConfigMap
				fromUnstructured(t, obj, &cm)
				for k, v := range cm.Data {
					out[k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			out[e.Name] = "from:" + e.ValueFrom.FieldRef.FieldPath
			continue
		}
		out[e.Name] = e.Value
	}
	return out
}

// TestChartDefaultsMatchKustomize: the chart's default render, installed as release
// aws-secret-controller in namespace aws-secret-controller, and the kustomize install agree on
// what matters: RBAC rules, the controller's arguments and environment, security contexts,
// resources, replicas and the disruption budget; and both pass the manifests' safeguards.
func TestChartDefaultsMatchKustomize(t *testing.T) {
	for name, tc := range map[string]struct {
		values, kustomize, roleKind string
	}{
		"cluster-wide": {"", filepath.Join(repoRoot, "manifests"), "ClusterRole"},
		"namespaced":   {"namespaceScoped: true\n", filepath.Join(repoRoot, "manifests", "namespaced"), "Role"},
	} {
		t.Run(name, func(t *testing.T) {
			chart := mustRenderChart(t, controllerName, controllerNamespace, tc.values)
			kust := render(t, tc.kustomize)
			if got, want := rbacRules(t, chart, tc.roleKind, controllerName), rbacRules(t, kust, tc.roleKind, controllerName); !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("%s rules differ:\nchart     %+v\nkustomize %+v", tc.roleKind, got, want)
			}
			leader := controllerName + "-leader-election"
			if got, want := rbacRules(t, chart, "Role", leader), rbacRules(t, kust, "Role", leader); !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("leader election rules differ:\nchart     %+v\nkustomize %+v", got, want)
			}
			cw, kw := renderedWorkload(t, chart), renderedWorkload(t, kust)
			checkWorkload(t, cw)
			cd, kd := cw.deployment, kw.deployment
			cc, kc := controllerContainer(t, cd), controllerContainer(t, kd)
			for what, pair := range map[string][2]any{
				"args":                {cc.Args, kc.Args},
				"environment":         {effectiveEnv(t, cc, chart), effectiveEnv(t, kc, kust)},
				"securityContext":     {cc.SecurityContext, kc.SecurityContext},
				"pod securityContext": {cd.Spec.Template.Spec.SecurityContext, kd.Spec.Template.Spec.SecurityContext},
				"resources":           {cc.Resources, kc.Resources},
				"probes":              {[]any{cc.LivenessProbe, cc.ReadinessProbe, cc.Ports}, []any{kc.LivenessProbe, kc.ReadinessProbe, kc.Ports}},
				"image":               {cc.Image + " " + string(cc.ImagePullPolicy), kc.Image + " " + string(kc.ImagePullPolicy)},
				"replicas":            {*cd.Spec.Replicas, *kd.Spec.Replicas},
				"grace period":        {cd.Spec.Template.Spec.TerminationGracePeriodSeconds, kd.Spec.Template.Spec.TerminationGracePeriodSeconds},
				"disruption budget":   {[]any{cw.pdbs[0].Spec.MaxUnavailable, cw.pdbs[0].Spec.UnhealthyPodEvictionPolicy}, []any{kw.pdbs[0].Spec.MaxUnavailable, kw.pdbs[0].Spec.UnhealthyPodEvictionPolicy}},
			} {
				if !equality.Semantic.DeepEqual(pair[0], pair[1]) {
					t.Errorf("%s differ:\nchart     %+v\nkustomize %+v", what, pair[0], pair[1])
				}
			}
		})
	}
}

// TestChartValues renders the chart with values files users write, and values the schema or the
// templates must refuse with a clear message.
func TestChartValues(t *testing.T) {
	deployment := func(t *testing.T, objs []*unstructured.Unstructured) (appsv1.Deployment, corev1.Container) {
		t.Helper()
		w := renderedWorkload(t, objs)
		return w.deployment, controllerContainer(t, w.deployment)
	}
	hasArgs := func(t *testing.T, c corev1.Container, want ...string) {
		t.Helper()
		for _, a := range want {
			if !slices.Contains(c.Args, a) {
				t.Errorf("args %q lack %q", c.Args, a)
			}
		}
	}
	lacksArgPrefix := func(t *testing.T, c corev1.Container, prefix string) {
		t.Helper()
		if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, prefix) }) {
			t.Errorf("args %q have %s", c.Args, prefix)
		}
	}
	tests := map[string]struct {
		release string
		values  string
		check   func(t *testing.T, objs []*unstructured.Unstructured)
		wantErr string
	}{
		"IRSA": {
			values: "serviceAccount:\n  annotations: {eks.amazonaws.com/role-arn: 'arn:aws:iam::123456789012:role/asc'}\n",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				sa := ofKind(objs, "ServiceAccount")
				if len(sa) != 1 || sa[0].GetAnnotations()["eks.amazonaws.com/role-arn"] != "arn:aws:iam::123456789012:role/asc" {
					t.Errorf("ServiceAccounts %s: want one with the role annotation", describe(sa))
				}
			},
		},
		"an existing ServiceAccount, no RBAC": {
			values: "serviceAccount: {create: false, name: mine}\nrbac: {create: false}\n",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				for _, kind := range []string{"ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"} {
					if got := ofKind(objs, kind); len(got) != 0 {
						t.Errorf("rendered %s", describe(got))
					}
				}
				if d, _ := deployment(t, objs); d.Spec.Template.Spec.ServiceAccountName != "mine" {
					t.Errorf("serviceAccountName %q", d.Spec.Template.Spec.ServiceAccountName)
				}
			},
		},
		"image by digest": {
			values: "image: {repository: registry.example.com/asc, digest: 'sha256:" + strings.Repeat("0", 64) + "', pullPolicy: Always}\n",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if _, c := deployment(t, objs); c.Image != "registry.example.com/asc@sha256:"+strings.Repeat("0", 64) || c.ImagePullPolicy != corev1.PullAlways {
					t.Errorf("image %s %s", c.Image, c.ImagePullPolicy)
				}
			},
		},
		"flags": {
			values: `workers: 4
kubeAPI: {qps: 50, burst: 100}
allowedSecretIds: ["team-a/*", "shared/*"]
aws: {region: eu-west-1, endpoint: "https://vpce.example.com", roleSessionTags: false}
resyncPeriod: 1h
versionCacheBytes: 1048576
logLevel: 2
extraArgs: ["--leader-elect-lease-duration=30s"]
extraEnv: [{name: HTTPS_PROXY, value: "http://proxy:3128"}]
`,
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				_, c := deployment(t, objs)
				hasArgs(t, c, "--workers=4", "--kube-api-qps=50", "--kube-api-burst=100", "--allowed-secret-ids=team-a/*,shared/*",
					"--aws-endpoint=https://vpce.example.com", "--aws-role-session-tags=false", "--resync-period=1h",
					"--version-cache-bytes=1048576", "-v=2", "--leader-elect-lease-duration=30s", "--namespace-policy=allow-list")
				env := effectiveEnv(t, c, objs)
				if env["AWS_REGION"] != "eu-west-1" || env["HTTPS_PROXY"] != "http://proxy:3128" {
					t.Errorf("environment %v", env)
				}
			},
		},
		"namespaced": {
			values: "namespaceScoped: true\nnamespacePolicy: allow-list\n",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if got := ofKind(objs, "ClusterRole"); len(got) != 0 {
					t.Errorf("rendered %s", describe(got))
				}
				for _, r := range rbacRules(t, objs, "Role", "asc-aws-secret-controller") {
					if slices.Contains(r.Resources, "namespaces") {
						t.Errorf("the Role grants namespaces: %+v", r)
					}
				}
				_, c := deployment(t, objs)
				hasArgs(t, c, "--namespace=$(POD_NAMESPACE)")
				lacksArgPrefix(t, c, "--namespace-policy")
			},
		},
		"open policy": {
			values: "namespacePolicy: open\n",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				_, c := deployment(t, objs)
				lacksArgPrefix(t, c, "--namespace-policy")
			},
		},
		"alerts and dashboard": {
			values: "prometheusRule: {enabled: true, labels: {release: prom}}\ngrafanaDashboard: {enabled: true, namespace: grafana}\n",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				rules := ofKind(objs, "PrometheusRule")
				if len(rules) != 1 || rules[0].GetLabels()["release"] != "prom" {
					t.Fatalf("PrometheusRules %s", describe(rules))
				}
				groups, _, _ := unstructured.NestedSlice(rules[0].Object, "spec", "groups")
				var alerts []string
				for _, g := range groups {
					for _, r := range g.(map[string]any)["rules"].([]any) {
						alerts = append(alerts, r.(map[string]any)["alert"].(string))
					}
				}
				if len(alerts) != 6 {
					t.Errorf("alerts %v, want the six of files/alerts.yaml", alerts)
				}
				var dashboards []*unstructured.Unstructured
				for _, cm := range ofKind(objs, "ConfigMap") {
					if cm.GetLabels()["grafana_dashboard"] == "1" {
						dashboards = append(dashboards, cm)
					}
				}
				if len(dashboards) != 1 || dashboards[0].GetNamespace() != "grafana" {
					t.Fatalf("dashboard ConfigMaps %s", describe(dashboards))
				}
				data, _, _ := unstructured.NestedString(dashboards[0].Object, "data", "aws-secret-controller.json")
				var d struct{ Panels []any }
				if err := json.Unmarshal([]byte(data), &d); err != nil || len(d.Panels) == 0 {
					t.Errorf("the dashboard's JSON: %v, %d panels", err, len(d.Panels))
				}
			},
		},
		"NetworkPolicy": {
			values: "networkPolicy: {enabled: true, apiServerPorts: [6443], metricsFrom: [{namespaceSelector: {matchLabels: {name: monitoring}}}]}\n",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				np := ofKind(objs, "NetworkPolicy")
				if len(np) != 1 {
					t.Fatalf("NetworkPolicies %s", describe(np))
				}
				sel, _, _ := unstructured.NestedStringMap(np[0].Object, "spec", "podSelector", "matchLabels")
				dep, _ := deployment(t, objs)
				if !subset(sel, dep.Spec.Template.Labels) {
					t.Errorf("the NetworkPolicy selects %v; the Pods have %v", sel, dep.Spec.Template.Labels)
				}
				egress, _, _ := unstructured.NestedSlice(np[0].Object, "spec", "egress")
				var ports []string
				for _, rule := range egress {
					for _, p := range rule.(map[string]any)["ports"].([]any) {
						ports = append(ports, fmt.Sprint(p.(map[string]any)["port"]))
					}
				}
				if want := []string{"53", "53", "443", "6443"}; !slices.Equal(ports, want) {
					t.Errorf("egress ports %v, want %v (DNS, AWS, the API server)", ports, want)
				}
				from, _, _ := unstructured.NestedSlice(np[0].Object, "spec", "ingress")
				if len(from) != 1 || from[0].(map[string]any)["from"] == nil {
					t.Errorf("ingress %v, want the metrics and health ports from the given peers", from)
				}
			},
		},
		"ServiceMonitor": {
			values: "serviceMonitor: {enabled: true, labels: {release: prom}}\n",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				sm := ofKind(objs, "ServiceMonitor")
				if len(sm) != 1 || sm[0].GetLabels()["release"] != "prom" {
					t.Fatalf("ServiceMonitors %s", describe(sm))
				}
				sel, _, _ := unstructured.NestedStringMap(sm[0].Object, "spec", "selector", "matchLabels")
				svc := ofKind(objs, "Service")
				if len(svc) != 1 || !subset(sel, svc[0].GetLabels()) {
					t.Errorf("the ServiceMonitor selects %v; the metrics Service has %v", sel, svc[0].GetLabels())
				}
			},
		},
		"no PDB, no metrics Service, one replica without leader election": {
			values: "podDisruptionBudget: {enabled: false}\nmetrics: {service: {enabled: false}}\nreplicaCount: 1\nleaderElect: false\n",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				for _, kind := range []string{"PodDisruptionBudget", "Service"} {
					if got := ofKind(objs, kind); len(got) != 0 {
						t.Errorf("rendered %s", describe(got))
					}
				}
				for _, r := range ofKind(objs, "Role") {
					t.Errorf("rendered Role/%s without leader election", r.GetName())
				}
				_, c := deployment(t, objs)
				hasArgs(t, c, "--leader-elect=false")
			},
		},
		"scheduling": {
			values: `podAnnotations: {a: b}
podLabels: {team: x}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Exists}]
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: k, operator: Exists}]}]}}}
priorityClassName: system-cluster-critical
defaultTopologySpread: false
topologySpreadConstraints: [{maxSkew: 2, topologyKey: rack, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app.kubernetes.io/name: aws-secret-controller}}}]
`,
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				d, _ := deployment(t, objs)
				p := d.Spec.Template
				if p.Annotations["a"] != "b" || p.Labels["team"] != "x" || p.Spec.NodeSelector["kubernetes.io/os"] != "linux" ||
					len(p.Spec.Tolerations) != 1 || p.Spec.Affinity == nil || p.Spec.PriorityClassName != "system-cluster-critical" ||
					len(p.Spec.TopologySpreadConstraints) != 1 || p.Spec.TopologySpreadConstraints[0].TopologyKey != "rack" {
					t.Errorf("Pod template %+v", p)
				}
				if _, ok := d.Spec.Selector.MatchLabels["team"]; ok {
					t.Error("podLabels went into the selector: changing them would need a new Deployment")
				}
			},
		},
		"another release name": {
			release: "other",
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				d, c := deployment(t, objs)
				if d.Name != "other-aws-secret-controller" {
					t.Errorf("Deployment %s", d.Name)
				}
				hasArgs(t, c, "--leader-elect-id=other-aws-secret-controller")
			},
		},

		"latest":                             {values: "image: {tag: latest}\n", wantErr: "image.tag latest is refused"},
		"a bad digest":                       {values: "image: {digest: sha256:abc}\n", wantErr: "/image/digest"},
		"an unknown policy":                  {values: "namespacePolicy: sometimes\n", wantErr: "/namespacePolicy"},
		"a misspelt value":                   {values: "replicas: 3\n", wantErr: "replicas"},
		"zero workers":                       {values: "workers: 0\n", wantErr: "/workers"},
		"a verbosity the binary caps":        {values: "logLevel: 9\n", wantErr: "/logLevel"},
		"a resync period that is no period":  {values: "resyncPeriod: daily\n", wantErr: "/resyncPeriod"},
		"replicas without leader election":   {values: "leaderElect: false\n", wantErr: "replicaCount > 1 needs leaderElect"},
		"a ServiceMonitor without a Service": {values: "serviceMonitor: {enabled: true}\nmetrics: {service: {enabled: false}}\n", wantErr: "serviceMonitor.enabled needs metrics.service.enabled"},
		"no ServiceAccount name":             {values: "serviceAccount: {create: false}\n", wantErr: "serviceAccount.name is required"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			release := tc.release
			if release == "" {
				release = "asc"
			}
			objs, err := renderChart(t, release, "apps", tc.values)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("helm template: %v, want an error naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			tc.check(t, objs)
		})
	}
}

func subset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return len(sub) > 0
}

// TestChartServerSideDryRun sends what the chart renders (with the CRD) to the real API server
// as a server-side dry run, which validates every object against the API's schemas and runs
// admission; and runs `helm install --dry-run=server` against it.
func TestChartServerSideDryRun(t *testing.T) {
	ctx := context.Background()
	for name, values := range map[string]string{
		"defaults":      "",
		"namespaced":    "namespaceScoped: true\n",
		"IRSA":          "serviceAccount:\n  annotations: {eks.amazonaws.com/role-arn: 'arn:aws:iam::123456789012:role/asc'}\nextraEnv: [{name: A, value: b}]\n",
		"NetworkPolicy": "networkPolicy: {enabled: true}\ngrafanaDashboard: {enabled: true}\n",
	} {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t, "chart-"+strings.ToLower(name))
			file := valuesFile(t, values)
			rendered, err := helm(t, "template", "asc", chartDir(), "--namespace", ns, "--values", file, "--include-crds")
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, rendered)
			}
			out, err := env.Kubectl(ctx, rendered, "apply", "--dry-run=server", "--namespace", ns, "-f", "-")
			if err != nil {
				t.Errorf("server-side dry run: %v", err)
			}
			if !strings.Contains(out, "deployment.apps/asc-aws-secret-controller created (server dry run)") {
				t.Errorf("kubectl printed:\n%s", out)
			}
			if out, err := helm(t, "install", "asc", chartDir(), "--namespace", ns, "--values", file, "--dry-run=server", "--kubeconfig", env.Kubeconfig); err != nil {
				t.Errorf("helm install --dry-run=server: %v\n%s", err, out)
			}
		})
	}
}

// TestNetworkPolicyFilesAgree: manifests/networkpolicy is the chart's NetworkPolicy with default
// values (the same ports in and out), it selects the Pods of manifests/ and manifests/namespaced,
// and the API server accepts it (server-side dry run). Whether a network plugin enforces it is
// not tested: the test node's bridge plugin enforces no NetworkPolicy.
func TestNetworkPolicyFilesAgree(t *testing.T) {
	dir := filepath.Join(repoRoot, "manifests", "networkpolicy")
	kust := ofKind(render(t, dir), "NetworkPolicy")
	chart := ofKind(mustRenderChart(t, controllerName, controllerNamespace, "networkPolicy: {enabled: true}\n"), "NetworkPolicy")
	if len(kust) != 1 || len(chart) != 1 {
		t.Fatalf("NetworkPolicies: kustomize %s, chart %s", describe(kust), describe(chart))
	}
	for _, field := range []string{"policyTypes", "ingress", "egress"} {
		k, _, _ := unstructured.NestedFieldNoCopy(kust[0].Object, "spec", field)
		c, _, _ := unstructured.NestedFieldNoCopy(chart[0].Object, "spec", field)
		if k == nil || !equality.Semantic.DeepEqual(k, c) {
			t.Errorf("spec.%s differs:\nkustomize %v\nchart     %v", field, k, c)
		}
	}
	sel, _, _ := unstructured.NestedStringMap(kust[0].Object, "spec", "podSelector", "matchLabels")
	for _, variant := range []string{"manifests", filepath.Join("manifests", "namespaced")} {
		d := renderedWorkload(t, render(t, filepath.Join(repoRoot, variant))).deployment
		if len(sel) == 0 || !subset(sel, d.Spec.Template.Labels) || kust[0].GetNamespace() != d.Namespace {
			t.Errorf("manifests/networkpolicy selects %v in %q; %s's Pods have %v in %q", sel, kust[0].GetNamespace(), variant, d.Spec.Template.Labels, d.Namespace)
		}
	}
	ns := newNamespace(t, "networkpolicy")
	rendered := strings.Replace(kubectl(t, "", "kustomize", dir), "namespace: "+controllerNamespace+"\n", "namespace: "+ns+"\n", 1)
	out, err := env.Kubectl(context.Background(), rendered, "apply", "--dry-run=server", "--namespace", ns, "-f", "-")
	if err != nil || !strings.Contains(out, "networkpolicy.networking.k8s.io/aws-secret-controller created (server dry run)") {
		t.Errorf("server-side dry run: %v\n%s", err, out)
	}
}

// TestChartArtifactHubAnnotations: Chart.yaml's Artifact Hub annotations parse as Artifact Hub
// reads them; the license is LICENSE's; the image listed is the one the chart installs by default; the CRD example is
// manifests/example/awssecret.yaml and the API server accepts it (server-side dry run); every
// change has a kind Artifact Hub knows.
func TestChartArtifactHubAnnotations(t *testing.T) {
	var chart struct {
		AppVersion  string            `yaml:"appVersion"`
		Annotations map[string]string `yaml:"annotations"`
	}
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "charts", "aws-secret-controller", "Chart.yaml")), &chart); err != nil {
		t.Fatal(err)
	}
	field := func(name string, into any) {
		t.Helper()
		if err := yaml.Unmarshal([]byte(chart.Annotations["artifacthub.io/"+name]), into); err != nil {
			t.Errorf("artifacthub.io/%s: %v", name, err)
		}
	}
	var images []struct{ Name, Image string }
	field("images", &images)
	dep, c := renderedWorkload(t, mustRenderChart(t, controllerName, controllerNamespace, "")).deployment, corev1.Container{}
	if i := slices.IndexFunc(dep.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "controller" }); i >= 0 {
		c = dep.Spec.Template.Spec.Containers[i]
	}
	if len(images) != 1 || images[0].Image != c.Image || !strings.HasSuffix(c.Image, ":"+chart.AppVersion) {
		t.Errorf("artifacthub.io/images %+v; the chart installs %q (appVersion %s)", images, c.Image, chart.AppVersion)
	}
	var examples []map[string]any
	field("crdsExamples", &examples)
	var example map[string]any
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "manifests", "example", "awssecret.yaml")), &example); err != nil {
		t.Fatal(err)
	}
	if len(examples) != 1 || !equality.Semantic.DeepEqual(examples[0], example) {
		t.Errorf("artifacthub.io/crdsExamples %v, want manifests/example/awssecret.yaml %v", examples, example)
	}
	ns := newNamespace(t, "artifacthub")
	if out, err := env.Kubectl(context.Background(), readRepoFile(t, "manifests", "example", "awssecret.yaml"), "apply", "--dry-run=server", "-n", ns, "-f", "-"); err != nil {
		t.Errorf("the CRD example, server-side dry run: %v\n%s", err, out)
	}
	// The license: the LICENSE file's, which the generated code's headers also name.
	license := readRepoFile(t, "LICENSE")
	if chart.Annotations["artifacthub.io/license"] != "Apache-2.0" || !strings.Contains(license, "Apache License\n                           Version 2.0") ||
		!strings.Contains(readRepoFile(t, "hack", "boilerplate.go.txt"), "Licensed under the Apache License, Version 2.0") {
		t.Errorf("artifacthub.io/license %q: want Apache-2.0, as LICENSE and hack/boilerplate.go.txt say", chart.Annotations["artifacthub.io/license"])
	}
	var changes []struct{ Kind, Description string }
	field("changes", &changes)
	kinds := []string{"added", "changed", "deprecated", "removed", "fixed", "security"}
	for _, ch := range changes {
		if !slices.Contains(kinds, ch.Kind) || ch.Description == "" {
			t.Errorf("artifacthub.io/changes: %+v, want a kind of %v and a description", ch, kinds)
		}
	}
	var links []struct{ Name, URL string }
	field("links", &links)
	if len(changes) == 0 || len(links) == 0 {
		t.Errorf("changes %v, links %v: want some of each", changes, links)
	}
}
