package webhook

import (
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/wardmesh/ward/kube"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/redirect"
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
	ContainerRedirect  = "ward-init" // runs `ward redirect`
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
	WardImage  string // the Ward binary as entrypoint (agent, bootstrap, redirect init)
	// CNI skips the redirect init container: a CNI plugin redirects.
	CNI bool
	// Revision is the istio.io/rev value this control plane injects for;
	// "" means "default".
	Revision string
	// Namespace is the control plane's namespace (default
	// kube.DefaultNamespace) and Service its Service (default
	// DefaultService): CAAddr defaults to <Service>.<Namespace>.svc:15012,
	// and outside the default namespace the agent is told the control
	// plane's identity, spiffe://<td>/ns/<Namespace>/sa/ward
	// (--ca-server-id), which its serving certificate carries.
	Namespace   string
	Service     string
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
	if c.Namespace == "" {
		c.Namespace = kube.DefaultNamespace
	}
	if c.Service == "" {
		c.Service = DefaultService
	}
	if c.CAAddr == "" {
		c.CAAddr = ServiceAddr(c.Service, c.Namespace)
	}
	if c.XDSAddr == "" {
		c.XDSAddr = c.CAAddr
	}
	if c.TrustDomain == "" {
		c.TrustDomain = mesh.DefaultTrustDomain
	}
	return c
}

// DefaultService is the control plane's Service (the chart's "ward").
const DefaultService = "ward"

// ServiceAddr is the in-cluster address of the control plane's secure
// port (certificates and ADS over mTLS): <service>.<namespace>.svc:15012.
func ServiceAddr(service, namespace string) string {
	return service + "." + namespace + ".svc:15012"
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
	for _, n := range []string{ContainerProxy, ContainerAgent, ContainerBootstrap, ContainerRedirect} {
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
		args, err := redirectArgs(pod)
		if err != nil {
			return nil, false, fmt.Errorf("inject pod %s/%s: %w", pod.Namespace, podName(pod), err)
		}
		add(&inits, &st.InitContainers, redirectContainer(cfg, args))
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

// identityArgs name the workload and the control plane. --ca-server-id
// is spelled out only when the control plane runs outside the default
// namespace: there its serving certificate names
// spiffe://<td>/ns/<namespace>/sa/ward, not the agent's default (pods
// injected for a default install stay as they were).
func identityArgs(cfg InjectConfig) []string {
	args := []string{"--trust-domain", cfg.TrustDomain, "--xds-addr", cfg.XDSAddr, "--name", "$(POD_NAME)", "--ip", "$(INSTANCE_IP)"}
	if cfg.Namespace != mesh.ControlPlaneNamespace {
		id := mesh.Identity{TrustDomain: cfg.TrustDomain, Namespace: cfg.Namespace, ServiceAccount: mesh.ControlPlaneServiceAccount}
		args = append(args, "--ca-server-id", id.String())
	}
	return args
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
// SDS addresses) into the shared agent volume. It runs the image's
// entrypoint (ward) with arguments, like every container Ward injects:
// the image has no shell.
func bootstrapContainer(cfg InjectConfig) corev1.Container {
	args := append([]string{"agent", "bootstrap", "--envoy", "--out", envoyConfig, "--ns", "$(POD_NAMESPACE)", "--sa", "$(SERVICE_ACCOUNT)",
		"--state", agentDir, "--sds-socket", sdsSocket}, identityArgs(cfg)...)
	return corev1.Container{
		Name: ContainerBootstrap, Image: cfg.WardImage, Args: args,
		Env:             podEnv(),
		VolumeMounts:    []corev1.VolumeMount{{Name: VolumeAgent, MountPath: agentDir}},
		SecurityContext: proxySecurity(), Resources: resources("10m", "32Mi", "128Mi"),
	}
}

// redirectContainer runs `ward redirect`, which installs the pod's
// traffic capture with nf_tables from Go (package redirect): inbound TCP
// to 15006, outbound TCP to 15001, except the proxy's own traffic (uid
// and gid 1337), localhost and what the pod's annotations exclude. It is
// the only injected container that runs as root, with NET_ADMIN and
// NET_RAW and nothing else.
func redirectContainer(cfg InjectConfig, args []string) corev1.Container {
	return corev1.Container{
		Name: ContainerRedirect, Image: cfg.WardImage, Args: args,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr.To[int64](0), RunAsGroup: ptr.To[int64](0), RunAsNonRoot: ptr.To(false),
			AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
		},
		Resources: resources("10m", "16Mi", "64Mi"),
	}
}

// Pod annotations that shape the capture, as Istio spells them.
const (
	AnnotationIncludeInboundPorts     = "traffic.sidecar.istio.io/includeInboundPorts"
	AnnotationExcludeInboundPorts     = "traffic.sidecar.istio.io/excludeInboundPorts"
	AnnotationExcludeOutboundPorts    = "traffic.sidecar.istio.io/excludeOutboundPorts"
	AnnotationIncludeOutboundIPRanges = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	AnnotationExcludeOutboundIPRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
)

// redirectArgs translates the pod's traffic annotations into `ward
// redirect` flags. Every flag is spelled out (defaults too), so the pod
// spec says exactly what is captured. An invalid value is an error naming
// the annotation: skipping it would capture traffic the pod excluded, or
// let traffic bypass the proxy.
func redirectArgs(pod *corev1.Pod) ([]string, error) {
	args := []string{"redirect"}
	for _, a := range []struct {
		annotation, flag, def string
		parse                 func(string) (string, error)
	}{
		{AnnotationIncludeInboundPorts, "--include-inbound-ports", "*", portSet},
		{AnnotationExcludeInboundPorts, "--exclude-inbound-ports", "", ports},
		{AnnotationExcludeOutboundPorts, "--exclude-outbound-ports", "", ports},
		{AnnotationIncludeOutboundIPRanges, "--include-outbound-ip-ranges", "*", rangeSet},
		{AnnotationExcludeOutboundIPRanges, "--exclude-outbound-ip-ranges", "", prefixes},
	} {
		v, ok := pod.Annotations[a.annotation]
		if !ok {
			v = a.def
		}
		v, err := a.parse(v)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", a.annotation, err)
		}
		args = append(args, a.flag+"="+v)
	}
	return append(args, "--inbound-port="+strconv.Itoa(InboundPort), "--outbound-port="+strconv.Itoa(OutboundPort),
		"--proxy-uid="+strconv.Itoa(ProxyUID), "--proxy-gid="+strconv.Itoa(ProxyUID)), nil
}

// The annotation parsers return the canonical spelling.
func portSet(s string) (string, error) {
	v, err := redirect.ParsePortSet(s)
	return v.String(), err
}

func ports(s string) (string, error) {
	v, err := redirect.ParsePorts(s)
	return redirect.PortSet{Ports: v}.String(), err
}

func rangeSet(s string) (string, error) {
	v, err := redirect.ParseRangeSet(s)
	return v.String(), err
}

func prefixes(s string) (string, error) {
	v, err := redirect.ParsePrefixes(s)
	return redirect.RangeSet{Prefixes: v}.String(), err
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
