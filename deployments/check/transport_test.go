package check

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/muprotocol/mu/libs/certs"
)

// The settings naming the files of transport security: the mTLS
// certificate, key and CA bundle of every service, and the gossip keys of
// the gateways and runtimes.
var (
	tlsFileSettings = []string{"tls_cert_file", "tls_key_file", "tls_ca_file"}
	gossipServices  = []string{"gateway", "runtime"}
)

const gossipKeyFileSetting = "cluster_secret_key_file"

// fileOfSetting is the Secret key (and `mu certs` file name) each file
// setting reads.
var fileOfSetting = map[string]string{"tls_cert_file": "tls.crt", "tls_key_file": "tls.key", "tls_ca_file": "ca.crt", gossipKeyFileSetting: "key"}

var (
	placeholderOnce sync.Once
	placeholderCA   *certs.CA
	placeholderErr  error
	issuedMu        sync.Mutex
	issued          = map[string]*certs.Issued{}
)

// placeholder is what the provider's Secret (or `mu certs region`) would
// hold at a file of that name, for a service: a certificate of the
// service's identity and its key from one test CA, the CA itself, and a
// gossip key line. ok is false for a file it has no placeholder for.
func placeholder(t *testing.T, svc, name string) (content string, ok bool) {
	t.Helper()
	placeholderOnce.Do(func() { placeholderCA, placeholderErr = certs.NewCA("deployments check CA", 2*24*time.Hour) })
	if placeholderErr != nil {
		t.Fatal(placeholderErr)
	}
	role := svc
	if role == "executor" {
		role = "operator" // the executor's own certificate (its parts have theirs)
	}
	cert := func() *certs.Issued {
		issuedMu.Lock()
		defer issuedMu.Unlock()
		if iss := issued[role]; iss != nil {
			return iss
		}
		iss, err := placeholderCA.Issue(certs.Identity{Role: certs.Role(role), Name: role}, []string{role}, nil, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		issued[role] = iss
		return iss
	}
	switch name {
	case "tls.crt":
		return string(cert().CertPEM), true
	case "tls.key":
		return string(cert().KeyPEM), true
	case "ca.crt":
		return string(placeholderCA.CertPEM()), true
	case "key", "keys", "gossip.key":
		return base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")) + "\n", true
	}
	return "", false
}

// secretFiles are the files a Secret volume shows at mountPath: the
// rendered Secret's data, or, for a Secret the provider creates, the
// placeholders of the keys it projects (or of every key mu's Secrets use,
// for a volume without items).
func (r *rendered) secretFiles(t *testing.T, svc, mountPath string, v *corev1.SecretVolumeSource) map[string]string {
	t.Helper()
	out := map[string]string{}
	type item struct{ key, path string }
	var items []item
	for _, it := range v.Items {
		items = append(items, item{it.Key, it.Path})
	}
	s := r.secrets[v.SecretName]
	if len(items) == 0 {
		if s != nil {
			for k := range s.Data {
				items = append(items, item{k, k})
			}
			for k := range s.StringData {
				items = append(items, item{k, k})
			}
		} else {
			for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
				items = append(items, item{k, k})
			}
		}
	}
	for _, it := range items {
		p := path.Join(mountPath, it.path)
		switch {
		case s != nil:
			if b, ok := s.Data[it.key]; ok {
				out[p] = string(b)
			} else if v, ok := s.StringData[it.key]; ok {
				out[p] = v
			}
		default:
			if c, ok := placeholder(t, svc, it.key); ok {
				out[p] = c
			}
		}
	}
	return out
}

// transportFileProblems: with tlsOn, the service's config names its
// certificate, key and CA bundle, each a file the deployment mounts, and
// is not plaintext; without, it says plaintext: true. The gateway and
// runtimes read their gossip keys from a mounted file unless gossipOn is
// false, when cluster_plaintext is true.
func transportFileProblems(where, svc string, cfg map[string]any, files map[string]string, tlsOn, gossipOn bool) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	plaintext := cfg["plaintext"] == true
	switch {
	case tlsOn && plaintext:
		bad("%s: plaintext: true, want mTLS", where)
	case !tlsOn && !plaintext:
		bad("%s: TLS is off here but plaintext is %v: the service would refuse to start without certificates", where, cfg["plaintext"])
	}
	for _, k := range tlsFileSettings {
		p, _ := cfg[k].(string)
		switch {
		case !tlsOn && p != "":
			bad("%s: plaintext, but %s is %q", where, k, p)
		case tlsOn && p == "":
			bad("%s: no %s", where, k)
		case tlsOn:
			if _, ok := files[p]; !ok {
				bad("%s: %s %s is no mounted file", where, k, p)
			}
		}
	}
	if !slices.Contains(gossipServices, svc) {
		return out
	}
	p, _ := cfg[gossipKeyFileSetting].(string)
	gossipPlain := cfg["cluster_plaintext"] == true
	switch {
	case gossipOn && (p == "" || gossipPlain):
		bad("%s: gossip encryption is on but %s is %q and cluster_plaintext %v", where, gossipKeyFileSetting, p, cfg["cluster_plaintext"])
	case gossipOn:
		if _, ok := files[p]; !ok {
			bad("%s: %s %s is no mounted file", where, gossipKeyFileSetting, p)
		}
	case !gossipPlain:
		bad("%s: gossip encryption is off but cluster_plaintext is %v", where, cfg["cluster_plaintext"])
	}
	return out
}

// transportProblems checks every container of the chart: the files of
// transportFileProblems come from read-only Secret volumes, each
// component has a certificate Secret of its own (an identity per
// component), its key beside it, and no gossip key travels in the
// environment any more.
func (r *rendered) transportProblems(t *testing.T) []string {
	t.Helper()
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	holder := map[string]string{} // certificate Secret → the component it is mounted in
	for _, w := range r.workloads {
		for _, c := range w.pod.Spec.Containers {
			where := fmt.Sprintf("%s container %s", w, c.Name)
			inv, err := r.invocation(t, w, c)
			if err != nil {
				bad("%v", err)
				continue
			}
			cfg := r.serviceConfig(t, w, c)
			out = append(out, transportFileProblems(where, c.Name, cfg, inv.files, r.tlsEnabled(), r.gossipEncrypted())...)
			secretOf := func(setting string) string {
				p, _ := cfg[setting].(string)
				if p == "" {
					return ""
				}
				m, v := mountOf(w.pod.Spec, c, p)
				switch {
				case m == nil:
					bad("%s: %s %s is under no volume mount", where, setting, p)
				case v == nil || v.Secret == nil:
					bad("%s: %s %s is on volume %s, which is not a Secret", where, setting, p, m.Name)
				case !m.ReadOnly:
					bad("%s: %s %s is on a writable mount", where, setting, p)
				default:
					return v.Secret.SecretName
				}
				return ""
			}
			if r.tlsEnabled() {
				crt, key := secretOf("tls_cert_file"), secretOf("tls_key_file")
				secretOf("tls_ca_file")
				if crt != key {
					bad("%s: certificate from Secret %s, key from %s: want one Secret", where, crt, key)
				}
				if other, ok := holder[crt]; ok && other != c.Name && crt != "" {
					bad("%s: certificate Secret %s is also %s's: each component needs its own identity", where, crt, other)
				}
				holder[crt] = c.Name
			}
			if slices.Contains(gossipServices, c.Name) && r.gossipEncrypted() {
				secretOf(gossipKeyFileSetting)
			}
			for _, e := range c.Env {
				if strings.HasSuffix(e.Name, "_CLUSTER_SECRET_KEY") {
					bad("%s: env %s: the gossip keys come from %s (rotated without a restart)", where, e.Name, gossipKeyFileSetting)
				}
			}
		}
	}
	return out
}

// mountOf is the container's volume mount a file path lies under (the
// deepest one), and its volume.
func mountOf(spec corev1.PodSpec, c corev1.Container, p string) (*corev1.VolumeMount, *corev1.Volume) {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	if best == nil {
		return nil, nil
	}
	for i, v := range spec.Volumes {
		if v.Name == best.Name {
			return best, &spec.Volumes[i]
		}
	}
	return best, nil
}

// TestChart_TLSAndGossipKeysComeFromMountedSecrets renders each ci values
// file: with TLS and gossip encryption on (the default), every service's
// certificate files and the gossip keys are read-only Secret files; with
// them off (ci/no-encryption-values.yaml), plaintext is said explicitly.
func TestChart_TLSAndGossipKeysComeFromMountedSecrets(t *testing.T) {
	var sawOff, sawOn bool
	for _, values := range ciValues(t) {
		t.Run(path.Base(values), func(t *testing.T) {
			r := load(t, values)
			sawOn = sawOn || r.tlsEnabled()
			sawOff = sawOff || !r.tlsEnabled()
			for _, p := range append(r.transportProblems(t), r.certificateProblems(t)...) {
				t.Error(p)
			}
		})
	}
	if !sawOn || !sawOff {
		t.Errorf("the ci values files cover TLS on %v and off %v: want both", sawOn, sawOff)
	}
}

// TestChart_TransportChecksCatchASharedCertificateAndPlaintext makes sure
// the checks above can fail: two components given one certificate Secret,
// Certificates with another identity, Secret or usages, TLS off without
// plaintext, a certificate file nothing mounts.
func TestChart_TransportChecksCatchASharedCertificateAndPlaintext(t *testing.T) {
	minimal := path.Join(repoRoot, chartDir, "ci", "minimal-values.yaml")
	stream, err := render(t, minimal, "--set", "mudb.tls.existingSecret=mu-gateway-tls")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeStrict(stream)
	if err != nil {
		t.Fatal(err)
	}
	r := load(t, minimal)
	r.objects, r.workloads = objs, nil
	for _, o := range objs {
		if w, ok := workloadOf(o); ok {
			r.workloads = append(r.workloads, w)
		}
	}
	if ps := strings.Join(r.transportProblems(t), "\n"); !strings.Contains(ps, "certificate Secret mu-gateway-tls is also") {
		t.Errorf("a certificate Secret shared by the gateway and mudb: %q", ps)
	}

	cm := load(t, path.Join(repoRoot, chartDir, "ci", "cert-manager-values.yaml"))
	if len(cm.certs) != 6 {
		t.Fatalf("ci/cert-manager-values.yaml renders %d Certificates, want one per component", len(cm.certs))
	}
	if ps := cm.certificateProblems(t); len(ps) != 0 {
		t.Errorf("the chart's Certificates: %v", ps)
	}
	cm.certs[0].Spec.URIs = []string{"spiffe://mu/runtime/x"}
	cm.certs[1].Spec.SecretName = "elsewhere"
	cm.certs[2].Spec.Usages = []string{"server auth"}
	ps := strings.Join(cm.certificateProblems(t), "\n")
	for _, want := range []string{"uris [spiffe://mu/runtime/x], want [spiffe://mu/" + cm.certs[0].Metadata.Labels["app.kubernetes.io/component"], `writes Secret "elsewhere"`, `lack "client auth"`, "no Certificate writes"} {
		if !strings.Contains(ps, want) {
			t.Errorf("broken Certificates: %q, want %q", ps, want)
		}
	}

	files := map[string]string{"/var/run/mu/tls/tls.crt": "", "/var/run/mu/tls/tls.key": "", "/var/run/mu/tls/ca.crt": "", "/var/run/mu/gossip/key": ""}
	good := map[string]any{"tls_cert_file": "/var/run/mu/tls/tls.crt", "tls_key_file": "/var/run/mu/tls/tls.key", "tls_ca_file": "/var/run/mu/tls/ca.crt", gossipKeyFileSetting: "/var/run/mu/gossip/key"}
	if ps := transportFileProblems("good", "gateway", good, files, true, true); len(ps) != 0 {
		t.Errorf("a good config: %v", ps)
	}
	for _, tc := range []struct {
		name          string
		cfg           map[string]any
		tlsOn, gossip bool
		want          string
	}{
		{"TLS off without plaintext", map[string]any{"cluster_plaintext": true}, false, false, "plaintext is <nil>"},
		{"plaintext with TLS on", map[string]any{"plaintext": true}, true, false, "plaintext: true, want mTLS"},
		{"an unmounted certificate", map[string]any{"tls_cert_file": "/etc/tls.crt", "tls_key_file": "/var/run/mu/tls/tls.key", "tls_ca_file": "/var/run/mu/tls/ca.crt", "cluster_plaintext": true}, true, false, "tls_cert_file /etc/tls.crt is no mounted file"},
		{"gossip on without a key file", map[string]any{"plaintext": true}, false, true, "gossip encryption is on but cluster_secret_key_file"},
		{"gossip off without saying so", map[string]any{"plaintext": true}, false, false, "cluster_plaintext is <nil>"},
	} {
		if ps := strings.Join(transportFileProblems(tc.name, "gateway", tc.cfg, files, tc.tlsOn, tc.gossip), "\n"); !strings.Contains(ps, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, ps, tc.want)
		}
	}
}

// certificate is the part of a cert-manager.io/v1 Certificate the chart
// renders. It is decoded strictly (an unknown field is an error), without
// depending on cert-manager's module.
type certificate struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		SecretName string   `json:"secretName"`
		CommonName string   `json:"commonName"`
		URIs       []string `json:"uris"`
		DNSNames   []string `json:"dnsNames"`
		Usages     []string `json:"usages"`
		PrivateKey struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		Duration    string `json:"duration"`
		RenewBefore string `json:"renewBefore"`
		IssuerRef   struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// GetObjectKind and DeepCopyObject make a certificate a runtime.Object
// beside the typed Kubernetes objects.
func (c *certificate) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (c *certificate) DeepCopyObject() runtime.Object   { d := *c; return &d }

// decodeCertificate decodes a cert-manager.io document; ok is false for a
// document of any other group.
func decodeCertificate(doc []byte) (*certificate, bool, error) {
	js, err := utilyaml.ToJSON(doc)
	if err != nil {
		return nil, false, err
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(js, &head); err != nil || !strings.HasPrefix(head.APIVersion, "cert-manager.io/") {
		return nil, false, nil
	}
	if head.APIVersion != "cert-manager.io/v1" || head.Kind != "Certificate" {
		return nil, true, fmt.Errorf("%s %s: the check knows cert-manager.io/v1 Certificate only", head.APIVersion, head.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var c certificate
	if err := dec.Decode(&c); err != nil {
		return nil, true, fmt.Errorf("Certificate: %w", err)
	}
	return &c, true, nil
}

// certificateProblems: each Certificate writes the Secret its component
// mounts for its certificate, with that component's identity as its one
// URI SAN, for servers and clients; with tls.certManager on, every
// component's Secret is written by one.
func (r *rendered) certificateProblems(t *testing.T) []string {
	t.Helper()
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	mounted := map[string]string{} // component → Secret of its tls_cert_file
	for _, w := range r.workloads {
		for _, c := range w.pod.Spec.Containers {
			if p, _ := r.serviceConfig(t, w, c)["tls_cert_file"].(string); p != "" {
				if _, v := mountOf(w.pod.Spec, c, p); v != nil && v.Secret != nil {
					mounted[c.Name] = v.Secret.SecretName
				}
			}
		}
	}
	written := map[string]bool{}
	for _, c := range r.certs {
		where := "Certificate/" + c.Metadata.Name
		comp := c.Metadata.Labels["app.kubernetes.io/component"]
		want := certs.Identity{Role: certs.Role(comp), Name: comp}.String()
		if len(c.Spec.URIs) != 1 || c.Spec.URIs[0] != want {
			bad("%s: uris %v, want [%s]", where, c.Spec.URIs, want)
		}
		if mounted[comp] != c.Spec.SecretName {
			bad("%s: writes Secret %q, but %s mounts its certificate from %q", where, c.Spec.SecretName, comp, mounted[comp])
		} else {
			written[comp] = true
		}
		for _, u := range []string{"server auth", "client auth"} {
			if !slices.Contains(c.Spec.Usages, u) {
				bad("%s: usages %v lack %q (a service's certificate is its server and its client certificate)", where, c.Spec.Usages, u)
			}
		}
		if c.Spec.IssuerRef.Name == "" {
			bad("%s: no issuerRef.name", where)
		}
	}
	tls, _ := r.values["tls"].(map[string]any)
	cm, _ := tls["certManager"].(map[string]any)
	ref, _ := cm["issuerRef"].(map[string]any)
	if name, _ := ref["name"].(string); name != "" && r.tlsEnabled() {
		for comp := range mounted {
			if !written[comp] {
				bad("tls.certManager.issuerRef is set but no Certificate writes %s's Secret %s", comp, mounted[comp])
			}
		}
	} else if len(r.certs) > 0 {
		bad("%d Certificates rendered without tls.certManager.issuerRef.name", len(r.certs))
	}
	return out
}
