package check

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"gopkg.in/yaml.v3"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

const (
	chartDir    = "helm/mu"
	kubeVersion = "1.30.0"
	release     = "mu"
	namespace   = "mu-system"
)

// helm returns the pinned helm binary that `make helm` installs, with its
// cache, config and data kept in a temporary directory (no network, no
// state of the user's).
func helm(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	bin := os.Getenv("MU_HELM")
	if bin == "" {
		bin = filepath.Join(repoRoot, ".tmp", "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm not found at %s (MU_HELM): run `make helm` to install the pinned version", bin)
	}
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	return cmd
}

// ciValues lists the chart's ci values files: each one is rendered and
// checked.
func ciValues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, chartDir, "ci", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in %s/ci (%v)", chartDir, err)
	}
	return files
}

// render runs helm template on the chart with the values file.
func render(t *testing.T, values string, extra ...string) ([]byte, error) {
	t.Helper()
	args := append([]string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion, "-f", values}, extra...)
	cmd := helm(t, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// rendered is one rendering of the chart, decoded.
type rendered struct {
	name       string
	values     map[string]any
	objects    []runtime.Object
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	certs      []*certificate // cert-manager Certificates
	services   []*corev1.Service
	workloads  []workload
}

// workload is a Deployment or StatefulSet: what the checks need of it.
type workload struct {
	kind, name  string
	labels      map[string]string
	pod         corev1.PodTemplateSpec
	serviceName string   // a StatefulSet's governing Service
	claims      []string // a StatefulSet's volumeClaimTemplates
}

func (w workload) String() string { return w.kind + "/" + w.name }

// workloadOf is a Deployment's or StatefulSet's workload.
func workloadOf(o runtime.Object) (workload, bool) {
	switch o := o.(type) {
	case *appsv1.Deployment:
		w := workload{kind: "Deployment", name: o.Name, pod: o.Spec.Template}
		if o.Spec.Selector != nil {
			w.labels = o.Spec.Selector.MatchLabels
		}
		return w, true
	case *appsv1.StatefulSet:
		w := workload{kind: "StatefulSet", name: o.Name, pod: o.Spec.Template, serviceName: o.Spec.ServiceName}
		if o.Spec.Selector != nil {
			w.labels = o.Spec.Selector.MatchLabels
		}
		for _, c := range o.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, c.Name)
		}
		return w, true
	}
	return workload{}, false
}

// decodeStrict splits a multi-document YAML stream and decodes every
// document into its typed Kubernetes object; an unknown field, kind or
// apiVersion is an error.
func decodeStrict(stream []byte) ([]runtime.Object, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := monitoringv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	dec := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var out []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		if cert, ok, err := decodeCertificate(doc); ok || err != nil {
			if err != nil {
				return nil, fmt.Errorf("%s: %w\n%s", sourceOf(doc), err, doc)
			}
			out = append(out, cert)
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", sourceOf(doc), err, doc)
		}
		if gvk.Kind == "" {
			return nil, fmt.Errorf("%s: no kind", sourceOf(doc))
		}
		out = append(out, obj)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// sourceOf is the "# Source: mu/templates/x.yaml" line helm puts above
// each document.
func sourceOf(doc []byte) string {
	for _, line := range strings.Split(string(doc), "\n") {
		if s, ok := strings.CutPrefix(line, "# Source: "); ok {
			return s
		}
	}
	return "document"
}

func load(t *testing.T, values string) *rendered {
	t.Helper()
	stream, err := render(t, values)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeStrict(stream)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(values), err)
	}
	r := &rendered{name: "ci/" + filepath.Base(values), objects: objs, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	b, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &r.values); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			r.configMaps[o.Name] = o
		case *corev1.Secret:
			r.secrets[o.Name] = o
		case *corev1.Service:
			r.services = append(r.services, o)
		case *certificate:
			r.certs = append(r.certs, o)
		case *appsv1.Deployment, *appsv1.StatefulSet:
			w, _ := workloadOf(o)
			if len(w.labels) == 0 {
				t.Errorf("%s: %s has no selector", r.name, w)
			}
			r.workloads = append(r.workloads, w)
		}
	}
	for _, w := range r.workloads {
		if !labels.SelectorFromSet(w.labels).Matches(labels.Set(w.pod.Labels)) {
			t.Errorf("%s: %s: selector %v does not match its pod labels %v", r.name, w, w.labels, w.pod.Labels)
		}
	}
	return r
}

// documentedSecrets are the Secrets a values file names for the provider
// to create: keys named existingSecret (and tls.caSecret,
// ledger.solana.feePayerSecret) anywhere in it,
// the imagePullSecrets, and the certificate Secrets values.yaml documents
// as required under their default names.
func (r *rendered) documentedSecrets() map[string]bool {
	out := map[string]bool{}
	if ps, ok := r.values["imagePullSecrets"].([]any); ok {
		for _, p := range ps {
			if m, ok := p.(map[string]any); ok {
				if n, ok := m["name"].(string); ok {
					out[n] = true
				}
			}
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "existingSecret" || k == "caSecret" || k == "feePayerSecret") && s != "" {
					out[s] = true
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(r.values)
	for name := range r.requiredTLSSecrets() {
		out[name] = true
	}
	for _, c := range r.certs {
		out[c.Spec.SecretName] = true // written by cert-manager
	}
	return out
}

// chartValues is the chart's own values.yaml: its comments document what a
// provider must create.
var chartValues = func() string {
	b, err := os.ReadFile(filepath.Join(repoRoot, chartDir, "values.yaml"))
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// tlsEnabled and gossipEncrypted are the values' tls.enabled and
// gossip.encryption.enabled, both true by default.
func (r *rendered) tlsEnabled() bool {
	tls, _ := r.values["tls"].(map[string]any)
	on, ok := tls["enabled"].(bool)
	return !ok || on
}

func (r *rendered) gossipEncrypted() bool {
	g, _ := r.values["gossip"].(map[string]any)
	enc, _ := g["encryption"].(map[string]any)
	on, ok := enc["enabled"].(bool)
	return !ok || on
}

// requiredTLSSecrets are the certificate Secrets a provider creates under
// the default names values.yaml documents (<fullname>-<component>-tls,
// REQUIRED while tls.enabled), for the components whose
// <component>.tls.existingSecret is not set.
func (r *rendered) requiredTLSSecrets() map[string]bool {
	out := map[string]bool{}
	if !r.tlsEnabled() || !strings.Contains(chartValues, "<fullname>-<component>-tls (REQUIRED while") {
		return out
	}
	for _, c := range []string{"gateway", "runtime", "mudb", "storage", "chain-indexer", "billing"} {
		key := c
		if c == "chain-indexer" {
			key = "chainIndexer"
		}
		comp, _ := r.values[key].(map[string]any)
		tls, _ := comp["tls"].(map[string]any)
		if s, _ := tls["existingSecret"].(string); s == "" {
			out[release+"-"+c+"-tls"] = true
		}
	}
	return out
}

// podsOf are the workloads whose pods a selector picks.
func (r *rendered) podsOf(sel map[string]string) []workload {
	var out []workload
	if len(sel) == 0 {
		return nil
	}
	for _, w := range r.workloads {
		if labels.SelectorFromSet(sel).Matches(labels.Set(w.pod.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func TestChart_LintStrict(t *testing.T) {
	for _, values := range ciValues(t) {
		cmd := helm(t, "lint", "--strict", "--kube-version", kubeVersion, chartDir, "-f", values)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("helm lint --strict -f %s: %v\n%s", filepath.Base(values), err, out)
		}
	}
}

// TestChart_ObjectsDecodeStrictlyAndReferToEachOther renders the chart
// with each ci values file and checks what Kubernetes would only find out
// at install time, or never: unknown fields, Services selecting no pods or
// naming ports the pods lack, references to Secrets and ConfigMaps that
// neither the chart nor the provider (an existingSecret value) creates,
// gossip ports, probes, grace periods, PDBs, the ServiceMonitor and the
// Ingress.
func TestChart_ObjectsDecodeStrictlyAndReferToEachOther(t *testing.T) {
	for _, values := range ciValues(t) {
		t.Run(filepath.Base(values), func(t *testing.T) {
			r := load(t, values)
			if len(r.workloads) == 0 {
				t.Fatal("no workloads rendered")
			}
			checkServices(t, r)
			checkReferences(t, r)
			checkContainers(t, r)
			checkPolicy(t, r)
		})
	}
}

func checkServices(t *testing.T, r *rendered) {
	t.Helper()
	for _, svc := range r.services {
		pods := r.podsOf(svc.Spec.Selector)
		if len(pods) == 0 {
			t.Errorf("Service/%s: selector %v matches no pods", svc.Name, svc.Spec.Selector)
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == "" {
				t.Errorf("Service/%s: port %d has no name", svc.Name, p.Port)
			}
			for _, w := range pods {
				cp, ok := containerPort(w.pod.Spec, p.TargetPort.String(), p.TargetPort.IntVal, p.Protocol)
				if !ok {
					t.Errorf("Service/%s port %s: target %s/%s is not a port of %s", svc.Name, p.Name, p.TargetPort.String(), protocol(p.Protocol), w)
					continue
				}
				if cp.Name != p.Name {
					t.Errorf("Service/%s: port %s targets %s's port named %q: name them the same", svc.Name, p.Name, w, cp.Name)
				}
			}
		}
	}
	// The runtimes' governing Service carries gossip: headless, with
	// not-ready addresses (a starting runtime must be found to join), on
	// TCP and UDP.
	var runtimes int
	for _, w := range r.workloads {
		if w.kind != "StatefulSet" {
			continue
		}
		runtimes++
		svc := r.service(w.serviceName)
		if svc == nil {
			t.Errorf("%s: serviceName %q is not rendered", w, w.serviceName)
			continue
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service/%s: clusterIP %q publishNotReadyAddresses %v, want a headless Service that publishes not-ready addresses", svc.Name, svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
		}
		for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
			if !hasPort(svc.Spec.Ports, 7946, proto) {
				t.Errorf("Service/%s: no gossip port 7946/%s", svc.Name, proto)
			}
		}
	}
	if runtimes != 1 {
		t.Errorf("%d StatefulSets, want the runtime's alone", runtimes)
	}
}

func (r *rendered) service(name string) *corev1.Service {
	for _, s := range r.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func hasPort(ports []corev1.ServicePort, port int32, proto corev1.Protocol) bool {
	for _, p := range ports {
		if p.Port == port && protocol(p.Protocol) == proto {
			return true
		}
	}
	return false
}

// containerPort finds the container port a Service port targets, by name
// or number, with the same protocol.
func containerPort(spec corev1.PodSpec, name string, number int32, proto corev1.Protocol) (corev1.ContainerPort, bool) {
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			if protocol(cp.Protocol) != protocol(proto) {
				continue
			}
			if (number != 0 && cp.ContainerPort == number) || (number == 0 && cp.Name == name) {
				return cp, true
			}
		}
	}
	return corev1.ContainerPort{}, false
}

func checkReferences(t *testing.T, r *rendered) {
	t.Helper()
	documented := r.documentedSecrets()
	secret := func(where, name, key string) {
		if s, ok := r.secrets[name]; ok {
			if key != "" {
				if _, ok := s.Data[key]; !ok {
					if _, ok := s.StringData[key]; !ok {
						t.Errorf("%s: Secret/%s has no key %q", where, name, key)
					}
				}
			}
			return
		}
		if !documented[name] {
			t.Errorf("%s: Secret %q is neither rendered by the chart nor an existingSecret value", where, name)
		}
	}
	configMap := func(where, name, key string) {
		cm, ok := r.configMaps[name]
		if !ok {
			t.Errorf("%s: ConfigMap %q is not rendered by the chart", where, name)
			return
		}
		if _, ok := cm.Data[key]; key != "" && !ok {
			t.Errorf("%s: ConfigMap/%s has no key %q", where, name, key)
		}
	}
	for _, w := range r.workloads {
		spec := w.pod.Spec
		for _, v := range spec.Volumes {
			where := fmt.Sprintf("%s volume %s", w, v.Name)
			switch {
			case v.Secret != nil:
				secret(where, v.Secret.SecretName, "")
				for _, it := range v.Secret.Items {
					secret(where, v.Secret.SecretName, it.Key)
				}
			case v.ConfigMap != nil:
				configMap(where, v.ConfigMap.Name, "")
				for _, it := range v.ConfigMap.Items {
					configMap(where, v.ConfigMap.Name, it.Key)
				}
			}
		}
		for _, ps := range spec.ImagePullSecrets {
			secret(w.String()+" imagePullSecrets", ps.Name, "")
		}
		if sa := spec.ServiceAccountName; sa != "" && sa != "default" && !r.hasObject("ServiceAccount", sa) && !r.serviceAccountIsExternal() {
			t.Errorf("%s: ServiceAccount %q is not rendered", w, sa)
		}
		for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				where := fmt.Sprintf("%s container %s env %s", w, c.Name, e.Name)
				if ref := e.ValueFrom.SecretKeyRef; ref != nil {
					if r.secrets[ref.Name] != nil || ref.Optional == nil || !*ref.Optional {
						secret(where, ref.Name, ref.Key)
					}
				}
				if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
					configMap(where, ref.Name, ref.Key)
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.SecretRef != nil {
					secret(w.String()+" envFrom", ef.SecretRef.Name, "")
				}
				if ef.ConfigMapRef != nil {
					configMap(w.String()+" envFrom", ef.ConfigMapRef.Name, "")
				}
			}
			for _, m := range c.VolumeMounts {
				if !hasVolume(spec, m.Name) && !slices.Contains(w.claims, m.Name) {
					t.Errorf("%s container %s mounts %q, which is no volume", w, c.Name, m.Name)
				}
			}
		}
	}
}

func (r *rendered) hasObject(kind, name string) bool {
	for _, o := range r.objects {
		if o.GetObjectKind().GroupVersionKind().Kind == kind {
			if m, ok := o.(interface{ GetName() string }); ok && m.GetName() == name {
				return true
			}
		}
	}
	return false
}

// serviceAccountIsExternal: the values ask the chart to use a
// ServiceAccount it does not create.
func (r *rendered) serviceAccountIsExternal() bool {
	sa, _ := r.values["serviceAccount"].(map[string]any)
	create, ok := sa["create"].(bool)
	return ok && !create
}

func hasVolume(spec corev1.PodSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

func checkContainers(t *testing.T, r *rendered) {
	t.Helper()
	seen := map[string]bool{}
	for _, w := range r.workloads {
		for _, c := range w.pod.Spec.Containers {
			if _, ok := services[c.Name]; !ok {
				t.Errorf("%s: container %q is not named for a mu service", w, c.Name)
				continue
			}
			seen[c.Name] = true
			if _, ok := namedPort(c, "grpc"); !ok {
				t.Errorf("%s container %s: no port named grpc", w, c.Name)
			}
			// The probes ask the admin port (plain HTTP): the gRPC port
			// requires a client certificate, which the kubelet's grpc
			// probe cannot present.
			admin, ok := namedPort(c, "admin")
			if !ok {
				t.Errorf("%s container %s: no port named admin", w, c.Name)
			}
			if cfg := r.serviceConfig(t, w, c); !strings.HasSuffix(fmt.Sprint(cfg["admin_addr"]), fmt.Sprintf(":%d", admin.ContainerPort)) {
				t.Errorf("%s container %s: admin_addr %v does not bind the admin port %d the probes ask", w, c.Name, cfg["admin_addr"], admin.ContainerPort)
			}
			for _, p := range []struct {
				name, path string
				probe      *corev1.Probe
				required   bool
			}{{"readiness", "/readyz", c.ReadinessProbe, true}, {"liveness", "/healthz", c.LivenessProbe, true}, {"startup", "/healthz", c.StartupProbe, false}} {
				switch {
				case p.probe == nil:
					if p.required {
						t.Errorf("%s container %s: no %s probe", w, c.Name, p.name)
					}
				case p.probe.HTTPGet == nil:
					t.Errorf("%s container %s: %s probe is not an HTTP probe of the admin port (a grpc probe has no client certificate)", w, c.Name, p.name)
				case p.probe.HTTPGet.Port.String() != "admin" && p.probe.HTTPGet.Port.IntVal != admin.ContainerPort:
					t.Errorf("%s container %s: %s probe on port %s, the admin port is %d", w, c.Name, p.name, p.probe.HTTPGet.Port.String(), admin.ContainerPort)
				case p.probe.HTTPGet.Path != p.path:
					t.Errorf("%s container %s: %s probe asks %q, want %q (/readyz is readiness: a service waiting on TiKV would be restarted on it)", w, c.Name, p.name, p.probe.HTTPGet.Path, p.path)
				case p.probe.HTTPGet.Scheme != "" && p.probe.HTTPGet.Scheme != corev1.URISchemeHTTP:
					t.Errorf("%s container %s: %s probe scheme %s, the admin port is plain HTTP", w, c.Name, p.name, p.probe.HTTPGet.Scheme)
				}
			}
			if c.Name == "gateway" || c.Name == "runtime" {
				for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
					found := false
					for _, cp := range c.Ports {
						found = found || (cp.ContainerPort == 7946 && protocol(cp.Protocol) == proto)
					}
					if !found {
						t.Errorf("%s container %s: no gossip port 7946/%s", w, c.Name, proto)
					}
				}
			}
			if c.Resources.Requests == nil || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s container %s: want resource requests and a memory limit", w, c.Name)
			}
		}
	}
	for svc := range services {
		if svc != "executor" && !seen[svc] {
			t.Errorf("no container runs %s", svc)
		}
	}
}

func namedPort(c corev1.Container, name string) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

func checkPolicy(t *testing.T, r *rendered) {
	t.Helper()
	pdbs := 0
	for _, o := range r.objects {
		switch o := o.(type) {
		case *policyv1.PodDisruptionBudget:
			pdbs++
			if o.Spec.Selector == nil || len(r.podsOf(o.Spec.Selector.MatchLabels)) != 1 {
				t.Errorf("PodDisruptionBudget/%s: selector matches %d workloads, want 1", o.Name, len(r.podsOf(o.Spec.Selector.MatchLabels)))
			}
		case *monitoringv1.ServiceMonitor:
			var picked int
			for _, svc := range r.services {
				if labels.SelectorFromSet(o.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
					picked++
					for _, ep := range o.Spec.Endpoints {
						if !serviceHasPortName(svc, ep.Port) {
							t.Errorf("ServiceMonitor/%s: Service/%s has no port %q", o.Name, svc.Name, ep.Port)
						}
					}
				}
			}
			if picked == 0 {
				t.Errorf("ServiceMonitor/%s selects no Service", o.Name)
			}
		case *networkingv1.Ingress:
			for _, rule := range o.Spec.Rules {
				for _, p := range rule.HTTP.Paths {
					b := p.Backend.Service
					svc := r.service(b.Name)
					if svc == nil {
						t.Errorf("Ingress/%s: backend Service %q is not rendered", o.Name, b.Name)
					} else if !serviceHasPort(svc, b.Port) {
						t.Errorf("Ingress/%s: Service/%s has no port %v", o.Name, b.Name, b.Port)
					}
				}
			}
			for _, tls := range o.Spec.TLS {
				if tls.SecretName != "" && r.secrets[tls.SecretName] == nil {
					// TLS certificates come from the provider or cert-manager.
					t.Logf("Ingress/%s: TLS Secret %q is the provider's", o.Name, tls.SecretName)
				}
			}
		}
	}
	if pdbs == 0 && !strings.Contains(r.name, "no-pdb") {
		t.Errorf("no PodDisruptionBudgets rendered")
	}
	// Limits that meet agree: the gateway sizes requests for the frames
	// the runtimes accept, and waits at least as long as a call may run.
	configs := map[string]map[string]any{}
	for _, w := range r.workloads {
		for _, c := range w.pod.Spec.Containers {
			configs[c.Name] = r.serviceConfig(t, w, c)
		}
	}
	gwFrame, rtFrame := fmt.Sprint(configs["gateway"]["runtime_max_frame_size"]), fmt.Sprint(configs["runtime"]["max_frame_size"])
	if gwFrame != rtFrame {
		t.Errorf("gateway runtime_max_frame_size %s, runtime max_frame_size %s: they must be equal", gwFrame, rtFrame)
	}
	if call, invoke := dur(t, configs["runtime"], "call_timeout", 10*time.Second), dur(t, configs["gateway"], "invoke_timeout", 30*time.Second); invoke < call {
		t.Errorf("gateway invoke_timeout %v is shorter than the runtime's call_timeout %v", invoke, call)
	}
	// The runtime's instance memory (active + idle budgets) stays within
	// three quarters of its container's memory limit: the rest is the
	// node's own, and a budget past the limit is an OOM kill, not a 503.
	for _, w := range r.workloads {
		for _, c := range w.pod.Spec.Containers {
			if c.Name != "runtime" {
				continue
			}
			active, idle := bytesOf(t, configs["runtime"], "active_memory_budget", 8<<30), bytesOf(t, configs["runtime"], "idle_memory_budget", 1<<30)
			limit := c.Resources.Limits.Memory().Value()
			if 4*(active+idle) > 3*limit {
				t.Errorf("%s: active_memory_budget %d + idle_memory_budget %d is more than 3/4 of the memory limit %d", w, active, idle, limit)
			}
		}
	}
	// Graceful termination outlasts the drain: leave the ring, wait,
	// then drain within shutdown_timeout.
	for _, w := range r.workloads {
		for _, c := range w.pod.Spec.Containers {
			cfg := configs[c.Name]
			need := dur(t, cfg, "shutdown_timeout", 30*time.Second)
			if c.Name == "runtime" || c.Name == "gateway" {
				need += dur(t, cfg, "cluster_leave_timeout", 2*time.Second)
			}
			if c.Name == "runtime" {
				need += dur(t, cfg, "leave_drain", 2*time.Second)
			}
			grace := int64(30)
			if g := w.pod.Spec.TerminationGracePeriodSeconds; g != nil {
				grace = *g
			}
			if time.Duration(grace)*time.Second <= need {
				t.Errorf("%s: terminationGracePeriodSeconds %d does not outlast the %s drain (%v)", w, grace, c.Name, need)
			}
		}
	}
}

func serviceHasPortName(svc *corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func serviceHasPort(svc *corev1.Service, b networkingv1.ServiceBackendPort) bool {
	for _, p := range svc.Spec.Ports {
		if (b.Name != "" && p.Name == b.Name) || (b.Number != 0 && p.Port == b.Number) {
			return true
		}
	}
	return false
}

func bytesOf(t *testing.T, cfg map[string]any, key string, def int64) int64 {
	t.Helper()
	v, ok := cfg[key]
	if !ok {
		return def
	}
	switch n := v.(type) {
	case int:
		return int64(n)
	case int64:
		return n
	case uint64:
		return int64(n)
	case float64:
		return int64(n)
	}
	t.Errorf("%s: %v is not a number of bytes", key, v)
	return def
}

func dur(t *testing.T, cfg map[string]any, key string, def time.Duration) time.Duration {
	t.Helper()
	v, ok := cfg[key]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(fmt.Sprint(v))
	if err != nil {
		t.Errorf("%s: %v", key, err)
	}
	return d
}

// serviceConfig is the YAML a container's --config names, decoded.
func (r *rendered) serviceConfig(t *testing.T, w workload, c corev1.Container) map[string]any {
	t.Helper()
	inv, err := r.invocation(t, w, c)
	if err != nil {
		t.Error(err)
		return nil
	}
	var cfg map[string]any
	for i, a := range inv.args {
		if i > 0 && inv.args[i-1] == "--config" {
			if err := yaml.Unmarshal([]byte(inv.files[a]), &cfg); err != nil {
				t.Errorf("%s: %s: %v", inv.where, a, err)
			}
		}
	}
	return cfg
}

// Placeholders for what the kubelet fills in and for Secrets the provider
// creates, each of the form the setting requires.
var (
	fieldValues = map[string]string{
		"metadata.name":      "mu-pod-0",
		"metadata.namespace": namespace,
		"status.podIP":       "10.1.2.3",
		"status.hostIP":      "10.0.0.1",
		"spec.nodeName":      "node-1",
	}
	secretPlaceholders = map[string]string{
		"MU_STORAGE_URL_SIGNING_KEY": strings.Repeat("ab", 32),
	}
)

// invocation is how the kubelet would start the container: its args, its
// environment resolved (fields, Secrets, $(VAR)) and the files of its
// ConfigMap and Secret volumes.
func (r *rendered) invocation(t *testing.T, w workload, c corev1.Container) (invocation, error) {
	t.Helper()
	where := fmt.Sprintf("%s %s container %s", r.name, w, c.Name)
	inv := invocation{where: where, service: c.Name, args: append(append([]string{}, c.Command[min(len(c.Command), 1):]...), c.Args...), env: map[string]string{}, files: map[string]string{}}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom == nil:
			v = expand(v, inv.env)
		case e.ValueFrom.FieldRef != nil:
			fv, ok := fieldValues[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				return inv, fmt.Errorf("%s: env %s: field %s has no placeholder here", where, e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			v = fv
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if s := r.secrets[ref.Name]; s != nil {
				if b, ok := s.Data[ref.Key]; ok {
					v = string(b)
				} else {
					v = s.StringData[ref.Key]
				}
			} else if p, ok := secretPlaceholders[e.Name]; ok {
				v = p
			} else {
				v = "provider-secret"
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			if cm := r.configMaps[e.ValueFrom.ConfigMapKeyRef.Name]; cm != nil {
				v = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
		case e.ValueFrom.ResourceFieldRef != nil:
			v = "1"
		}
		inv.env[e.Name] = v
	}
	for i, a := range inv.args {
		inv.args[i] = expand(a, inv.env)
	}
	for _, m := range c.VolumeMounts {
		for _, v := range w.pod.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				for p, content := range r.secretFiles(t, c.Name, m.MountPath, v.Secret) {
					inv.files[p] = content
				}
			}
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm := r.configMaps[v.ConfigMap.Name]
			if cm == nil {
				return inv, fmt.Errorf("%s: ConfigMap %q is not rendered", where, v.ConfigMap.Name)
			}
			add := func(key, path string) {
				inv.files[filepath.ToSlash(filepath.Join(m.MountPath, path))] = cm.Data[key]
			}
			switch {
			case m.SubPath != "":
				inv.files[m.MountPath] = cm.Data[m.SubPath]
			case len(v.ConfigMap.Items) > 0:
				for _, it := range v.ConfigMap.Items {
					add(it.Key, it.Path)
				}
			default:
				keys := make([]string, 0, len(cm.Data))
				for k := range cm.Data {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					add(k, k)
				}
			}
		}
	}
	return inv, nil
}

// TestChart_EveryRenderedConfigPassesTheBinariesOwnCheck starts nothing:
// it runs each container's binary with --check-config on the args,
// environment and config file the chart gives it, for every ci values
// file.
func TestChart_EveryRenderedConfigPassesTheBinariesOwnCheck(t *testing.T) {
	for _, values := range ciValues(t) {
		r := load(t, values)
		for _, w := range r.workloads {
			for _, c := range w.pod.Spec.Containers {
				inv, err := r.invocation(t, w, c)
				if err == nil {
					err = checkConfig(t, inv)
				}
				if err != nil {
					t.Error(err)
				}
			}
		}
	}
}

// TestChart_BadValuesAreRefusedByName: a misspelt key anywhere is refused
// by the schema, a missing required value by its name, and a misspelt
// service setting in a component's config map by the binary's check.
func TestChart_BadValuesAreRefusedByName(t *testing.T) {
	minimal := filepath.Join(repoRoot, chartDir, "ci", "minimal-values.yaml")
	cases := []struct {
		name string
		set  []string
		want string
	}{
		{"misspelt top-level key", []string{"--set", "tikv.pdEndpoint[0]=pd:2379"}, "pdEndpoint"},
		{"misspelt nested key", []string{"--set", "runtime.replica=2"}, "replica"},
		{"missing pd endpoints", []string{"--set", "tikv.pdEndpoints=null"}, "pdEndpoints"},
		{"missing s3 secret", []string{"--set", "s3.existingSecret="}, "existingSecret"},
		{"missing region", []string{"--set", "ledger.regionId="}, "regionId"},
		{"unknown ledger backend", []string{"--set", "ledger.backend=ethereum"}, "backend"},
		{"solana without a node", []string{"--set", "ledger.backend=solana", "--set", "ledger.solana.feePayerSecret=payer"}, "ledger.solana.rpcURL"},
		{"solana without a fee payer", []string{"--set", "ledger.backend=solana", "--set", "ledger.solana.rpcURL=http://node:8899"}, "ledger.solana.feePayerSecret"},
		{"solana with a websocket URL for its RPC", []string{"--set", "ledger.backend=solana", "--set", "ledger.solana.rpcURL=ws://node:8900", "--set", "ledger.solana.feePayerSecret=payer"}, "rpcURL"},
	}
	for _, tc := range cases {
		_, err := render(t, minimal, tc.set...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal naming %q", tc.name, err, tc.want)
		}
	}

	stream, err := render(t, minimal, "--set", "runtime.config.max_fule_per_call=5")
	if err != nil {
		t.Fatalf("a config override the schema lets through: %v", err)
	}
	objs, err := decodeStrict(stream)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			for k, v := range cm.Data {
				if k == "runtime.yaml" {
					found = true
					inv := invocation{where: "override", service: "runtime", args: []string{"--config", "/etc/mu/runtime.yaml"}, files: map[string]string{"/etc/mu/runtime.yaml": v}}
					if err := checkConfig(t, inv); err == nil || !strings.Contains(err.Error(), `unknown setting "max_fule_per_call"`) {
						t.Errorf("a misspelt runtime setting: %v", err)
					}
				}
			}
		}
	}
	if !found {
		t.Error("no runtime.yaml in any ConfigMap")
	}
}

// TestChart_SolanaBackendConfiguresTheIndexerAndBilling: with
// ledger.backend solana both the chain indexer and billing get the
// ledger_solana_* settings and the fee payer's Secret; billing settles on
// the program itself (no ledger_addr) and the indexer serves no ledger
// writes.
func TestChart_SolanaBackendConfiguresTheIndexerAndBilling(t *testing.T) {
	r := load(t, filepath.Join(repoRoot, chartDir, "ci", "solana-values.yaml"))
	seen := map[string]bool{}
	for _, w := range r.workloads {
		for _, c := range w.pod.Spec.Containers {
			if c.Name != "chain-indexer" && c.Name != "billing" {
				continue
			}
			seen[c.Name] = true
			cfg := r.serviceConfig(t, w, c)
			want := map[string]any{
				"ledger_backend":                  "solana",
				"ledger_solana_rpc_url":           "https://api.devnet.solana.com",
				"ledger_solana_ws_url":            "wss://api.devnet.solana.com",
				"ledger_solana_program_id":        "H7eDBkyrr5jLcjmNmyTbDo45sS6U6MvHx6fFGiF9AL8r",
				"ledger_solana_commitment":        "finalized",
				"ledger_solana_fee_payer_keypair": "/var/run/mu/fee-payer/payer.json",
			}
			for k, v := range want {
				if cfg[k] != v {
					t.Errorf("%s: %s = %v, want %v", c.Name, k, cfg[k], v)
				}
			}
			for _, k := range []string{"ledger_addr", "ledger_pd_endpoints"} {
				if _, ok := cfg[k]; ok {
					t.Errorf("%s: %s is set with the Solana backend", c.Name, k)
				}
			}
			if c.Name == "chain-indexer" && cfg["serve_ledger"] != false {
				t.Errorf("chain-indexer: serve_ledger = %v, want false", cfg["serve_ledger"])
			}
			mounted := false
			for _, m := range c.VolumeMounts {
				mounted = mounted || (m.Name == "fee-payer" && m.MountPath == "/var/run/mu/fee-payer" && m.ReadOnly)
			}
			fromSecret := false
			for _, v := range w.pod.Spec.Volumes {
				if v.Name == "fee-payer" && v.Secret != nil && v.Secret.SecretName == "mu-fee-payer" {
					for _, it := range v.Secret.Items {
						fromSecret = fromSecret || (it.Key == "payer.json" && it.Path == "payer.json")
					}
				}
			}
			if !mounted || !fromSecret {
				t.Errorf("%s: the fee payer's keypair (Secret mu-fee-payer, key payer.json) is not mounted read-only at /var/run/mu/fee-payer: mount %v, volume %v", c.Name, mounted, fromSecret)
			}
		}
	}
	if !seen["chain-indexer"] || !seen["billing"] {
		t.Fatalf("rendered containers %v, want chain-indexer and billing", seen)
	}
	// The local backend keeps its settings and mounts no fee payer.
	r = load(t, filepath.Join(repoRoot, chartDir, "ci", "minimal-values.yaml"))
	for _, w := range r.workloads {
		for _, c := range w.pod.Spec.Containers {
			if hasVolume(w.pod.Spec, "fee-payer") {
				t.Errorf("%s: a fee payer is mounted with the local ledger", w)
			}
			if c.Name == "billing" {
				if cfg := r.serviceConfig(t, w, c); cfg["ledger_addr"] == nil || cfg["ledger_backend"] != nil {
					t.Errorf("billing with the local ledger: ledger_addr %v, ledger_backend %v", cfg["ledger_addr"], cfg["ledger_backend"])
				}
			}
		}
	}
}
