package webhook

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/mesh"
)

// Labels and annotations that drive injection, as Istio spells them.
const (
	LabelInjectNamespace = "istio-injection"         // namespace: enabled / disabled
	LabelRevision        = "istio.io/rev"            // namespace: revision to inject
	LabelInject          = "sidecar.istio.io/inject" // pod: "true" / "false"
	AnnotationStatus     = "sidecar.istio.io/status" // set on injected pods
)

// Names of what injection adds.
const (
	ContainerProxy     = "ward-proxy"
	ContainerAgent     = "ward-agent"
	ContainerBootstrap = "ward-bootstrap"
	ContainerIPTables  = "ward-init"
	VolumeToken        = "ward-token"
	VolumeRootCert     = "ward-root-cert"
	VolumeAgent        = "ward-agent"
	ProxyUID           = 1337
	OutboundPort       = 15001
	InboundPort        = 15006
	TokenAudience      = "ward-ca"
	TokenSeconds       = 12 * 3600
)

const (
	agentDir     = "/var/run/ward/agent"
	tokenDir     = "/var/run/secrets/tokens"
	rootCertDir  = "/var/run/ward/root-cert"
	envoyConfig  = agentDir + "/envoy.json"
	sdsSocket    = agentDir + "/sds.sock"
	defaultRev   = "default"
	statusFormat = "ward/v1"
)

// InjectConfig is what injection needs to know about the mesh.
type InjectConfig struct {
	ProxyImage string // Envoy, e.g. envoyproxy/envoy:v1.36.0
	WardImage  string // the Ward binary (agent, bootstrap, iptables init)
	// CNI skips the iptables init container: a CNI plugin redirects.
	CNI bool
	// Revision is the istio.io/rev value this control plane injects for;
	// "" means "default".
	Revision    string
	CAAddr      string // e.g. ward.ward-system.svc:15012
	XDSAddr     string
	TrustDomain string
	// ExcludeNamespaces are never injected (kube-system is always
	// excluded).
	ExcludeNamespaces []string
}

func (c InjectConfig) withDefaults() InjectConfig {
	if c.ProxyImage == "" {
		c.ProxyImage = "envoyproxy/envoy:v1.36.0"
	}
	if c.WardImage == "" {
		c.WardImage = "ghcr.io/wardmesh/ward:latest"
	}
	if c.Revision == "" {
		c.Revision = defaultRev
	}
	if c.CAAddr == "" {
		c.CAAddr = "ward." + kube.DefaultNamespace + ".svc:15012"
	}
	if c.XDSAddr == "" {
		c.XDSAddr = c.CAAddr
	}
	if c.TrustDomain == "" {
		c.TrustDomain = mesh.DefaultTrustDomain
	}
	return c
}

// Decision is whether a pod is injected and why.
type Decision struct {
	Inject bool
	Reason string
}

// ShouldInject applies Istio's rules: never hostNetwork pods, kube-system
// or excluded namespaces, nor pods labelled sidecar.istio.io/inject=false
// or in namespaces labelled istio-injection=disabled; inject pods labelled
// sidecar.istio.io/inject=true, and pods in namespaces labelled
// istio-injection=enabled or istio.io/rev=<our revision>. ns may be nil
// (offline: the namespace counts as enabled).
func ShouldInject(pod *corev1.Pod, ns *corev1.Namespace, cfg InjectConfig) Decision {
	cfg = cfg.withDefaults()
	nsName := pod.Namespace
	if ns != nil {
		nsName = ns.Name
	}
	switch {
	case pod.Spec.HostNetwork:
		return Decision{false, "hostNetwork pod"}
	case nsName == "kube-system" || nsName == "kube-public" || nsName == "kube-node-lease" || contains(cfg.ExcludeNamespaces, nsName):
		return Decision{false, "namespace " + nsName + " is excluded"}
	case pod.Labels[LabelInject] == "false":
		return Decision{false, "pod label " + LabelInject + "=false"}
	case ns != nil && ns.Labels[LabelInjectNamespace] == "disabled":
		return Decision{false, "namespace label " + LabelInjectNamespace + "=disabled"}
	case pod.Labels[LabelInject] == "true":
		return Decision{true, "pod label " + LabelInject + "=true"}
	case ns == nil:
		return Decision{true, "offline injection"}
	case ns.Labels[LabelInjectNamespace] == "enabled":
		return Decision{true, "namespace label " + LabelInjectNamespace + "=enabled"}
	case ns.Labels[LabelRevision] != "":
		if ns.Labels[LabelRevision] == cfg.Revision {
			return Decision{true, "namespace revision " + cfg.Revision}
		}
		return Decision{false, fmt.Sprintf("namespace revision %q is not ours (%q)", ns.Labels[LabelRevision], cfg.Revision)}
	}
	return Decision{false, "injection not enabled for the pod or its namespace"}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// injectionStatus is the JSON of the status annotation.
type injectionStatus struct {
	Version        string   `json:"version"`
	InitContainers []string `json:"initContainers"`
	Containers     []string `json:"containers"`
	Volumes        []string `json:"volumes"`
}

// Injected reports whether pod already carries Ward's injection.
func Injected(pod *corev1.Pod) bool {
	_, ok := pod.Annotations[AnnotationStatus]
	if !ok {
		return false
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == ContainerProxy {
			return true
		}
	}
	return false
}

// Inject returns a copy of pod with the sidecar added. It is idempotent: an
// already injected pod is returned unchanged with changed false. It does
// not decide whether to inject (see ShouldInject).
func Inject(pod *corev1.Pod, cfg InjectConfig) (out *corev1.Pod, changed bool, err error) {
	if Injected(pod) {
		return pod, false, nil
	}
	cfg = cfg.withDefaults()
	out = pod.DeepCopy()
	for _, n := range []string{ContainerProxy, ContainerAgent, ContainerBootstrap, ContainerIPTables} {
		if hasContainer(out, n) {
			return nil, false, fmt.Errorf("inject pod %s/%s: container %q exists but the pod has no %s annotation", pod.Namespace, podName(pod), n, AnnotationStatus)
		}
	}
	st := injectionStatus{Version: statusFormat}
	add := func(list *[]corev1.Container, names *[]string, c corev1.Container) {
		*list = append(*list, c)
		*names = append(*names, c.Name)
	}
	var inits []corev1.Container
	add(&inits, &st.InitContainers, bootstrapContainer(cfg))
	if !cfg.CNI {
		add(&inits, &st.InitContainers, iptablesContainer(cfg, out))
	}
	out.Spec.InitContainers = append(inits, out.Spec.InitContainers...)
	add(&out.Spec.Containers, &st.Containers, agentContainer(cfg))
	add(&out.Spec.Containers, &st.Containers, proxyContainer(cfg))
	for _, v := range volumes() {
		out.Spec.Volumes = append(out.Spec.Volumes, v)
		st.Volumes = append(st.Volumes, v.Name)
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	out.Labels[mesh.LabelTLSMode] = string(mesh.TLSModeIstio)
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	b, _ := json.Marshal(st)
	out.Annotations[AnnotationStatus] = string(b)
	return out, true, nil
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	return pod.GenerateName + "*"
}

// podEnv is the downward API environment the agent and bootstrap use.
func podEnv() []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	return []corev1.EnvVar{
		field("POD_NAME", "metadata.name"),
		field("POD_NAMESPACE", "metadata.namespace"),
		field("INSTANCE_IP", "status.podIP"),
		field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
	}
}

func identityArgs(cfg InjectConfig) []string {
	return []string{"--trust-domain", cfg.TrustDomain, "--xds-addr", cfg.XDSAddr, "--name", "$(POD_NAME)", "--ip", "$(INSTANCE_IP)"}
}

func agentMounts() []corev1.VolumeMount {
	return []corev1.VolumeMount{
		{Name: VolumeAgent, MountPath: agentDir},
		{Name: VolumeToken, MountPath: tokenDir, ReadOnly: true},
		{Name: VolumeRootCert, MountPath: rootCertDir, ReadOnly: true},
	}
}

func proxySecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser: ptr.To[int64](ProxyUID), RunAsGroup: ptr.To[int64](ProxyUID), RunAsNonRoot: ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// bootstrapContainer writes the Envoy bootstrap (node identity, xDS and
// SDS addresses) into the shared agent volume.
func bootstrapContainer(cfg InjectConfig) corev1.Container {
	args := append([]string{"ward", "agent", "bootstrap", "--envoy", "--ns", "$(POD_NAMESPACE)", "--sa", "$(SERVICE_ACCOUNT)",
		"--state", agentDir, "--sds-socket", sdsSocket}, identityArgs(cfg)...)
	return corev1.Container{
		Name: ContainerBootstrap, Image: cfg.WardImage,
		Command:         []string{"/bin/sh", "-c", "exec " + strings.Join(args, " ") + " > " + envoyConfig},
		Env:             podEnv(),
		VolumeMounts:    []corev1.VolumeMount{{Name: VolumeAgent, MountPath: agentDir}},
		SecurityContext: proxySecurity(), Resources: resources("10m", "32Mi", "128Mi"),
	}
}

// iptablesContainer redirects the pod's TCP traffic through Envoy: inbound
// to 15006, outbound to 15001, except traffic of uid 1337 (the proxy and
// the agent) and to loopback.
func iptablesContainer(cfg InjectConfig, pod *corev1.Pod) corev1.Container {
	script := strings.Join([]string{
		"set -e",
		"iptables -t nat -N WARD_INBOUND",
		"iptables -t nat -A WARD_INBOUND -p tcp --dport 15020 -j RETURN",
		"iptables -t nat -A WARD_INBOUND -p tcp --dport 15090 -j RETURN",
		fmt.Sprintf("iptables -t nat -A WARD_INBOUND -p tcp -j REDIRECT --to-ports %d", InboundPort),
		"iptables -t nat -A PREROUTING -p tcp -j WARD_INBOUND",
		"iptables -t nat -N WARD_OUTBOUND",
		fmt.Sprintf("iptables -t nat -A WARD_OUTBOUND -m owner --uid-owner %d -j RETURN", ProxyUID),
		"iptables -t nat -A WARD_OUTBOUND -d 127.0.0.1/32 -j RETURN",
		fmt.Sprintf("iptables -t nat -A WARD_OUTBOUND -p tcp -j REDIRECT --to-ports %d", OutboundPort),
		"iptables -t nat -A OUTPUT -p tcp -j WARD_OUTBOUND",
	}, "\n")
	return corev1.Container{
		Name: ContainerIPTables, Image: cfg.WardImage, Command: []string{"/bin/sh", "-c", script},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr.To[int64](0), RunAsNonRoot: ptr.To(false), AllowPrivilegeEscalation: ptr.To(false),
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
		},
		Resources: resources("10m", "16Mi", "64Mi"),
	}
}

// agentContainer runs `ward agent`: it enrols with the projected token and
// serves SDS to Envoy over the shared Unix socket.
func agentContainer(cfg InjectConfig) corev1.Container {
	args := append([]string{"agent", "--ca-addr", cfg.CAAddr, "--ca-root", rootCertDir + "/" + kube.TrustBundleKey,
		"--token-file", tokenDir + "/" + VolumeToken, "--state", agentDir, "--sds-socket", sdsSocket}, identityArgs(cfg)...)
	return corev1.Container{
		Name: ContainerAgent, Image: cfg.WardImage, Args: args, Env: podEnv(),
		VolumeMounts: agentMounts(), SecurityContext: proxySecurity(), Resources: resources("10m", "32Mi", "128Mi"),
	}
}

func proxyContainer(cfg InjectConfig) corev1.Container {
	return corev1.Container{
		Name: ContainerProxy, Image: cfg.ProxyImage,
		Args:            []string{"-c", envoyConfig, "--log-level", "warning"},
		Ports:           []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: 15090, Protocol: corev1.ProtocolTCP}},
		VolumeMounts:    []corev1.VolumeMount{{Name: VolumeAgent, MountPath: agentDir}},
		SecurityContext: proxySecurity(), Resources: resources("100m", "128Mi", "1Gi"),
	}
}

func resources(cpu, mem, memLimit string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memLimit)},
	}
}

func volumes() []corev1.Volume {
	return []corev1.Volume{
		{Name: VolumeAgent, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		{Name: VolumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: TokenAudience, ExpirationSeconds: ptr.To[int64](TokenSeconds), Path: VolumeToken,
			}}},
		}}},
		{Name: VolumeRootCert, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: kube.TrustBundleConfigMap},
		}}},
	}
}
