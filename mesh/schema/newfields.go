package schema

import (
	"time"

	networking "istio.io/api/networking/v1alpha3"
)

// This file holds the checks for the fields istio.io/api v1.32 added to
// the kinds Ward reads. Each is either enforced by Ward (jwtRules[].presence,
// in authn), accepted with a warning when it only tunes behaviour Ward
// leaves at Envoy's defaults, or rejected when ignoring it would weaken
// security.

// minWeightUpdatePeriod is the API's documented minimum.
const minWeightUpdatePeriod = 100 * time.Millisecond

func checkBackendUtilization(e *errs, p string, bu *networking.LoadBalancerSettings_BackendUtilizationLB) {
	if bu == nil {
		return
	}
	checkDuration(e, p+".weightStabilizationPeriod", bu.GetWeightStabilizationPeriod())
	checkDuration(e, p+".weightExpirationPeriod", bu.GetWeightExpirationPeriod())
	checkDuration(e, p+".weightUpdatePeriod", bu.GetWeightUpdatePeriod())
	if d := bu.GetWeightUpdatePeriod(); d != nil && d.CheckValid() == nil && d.AsDuration() < minWeightUpdatePeriod {
		e.add(p+".weightUpdatePeriod", "weightUpdatePeriod %v is below the minimum of %v", d.AsDuration(), minWeightUpdatePeriod)
	}
	checkEmptyValues(e, p+".metricNamesForComputingUtilization", bu.GetMetricNamesForComputingUtilization())
	e.warnCode(CodeNotImplemented, p, "backendUtilization is not implemented by Ward yet: the cluster keeps the default load balancer")
}

func checkFailurePercentage(e *errs, p string, o *networking.OutlierDetection) {
	v := o.GetFailurePercentageThreshold()
	if v == nil {
		return
	}
	if v.GetValue() > 100 {
		e.add(p, "percentage %d is not in range 0..100", v.GetValue())
		return
	}
	e.warnCode(CodeNotImplemented, p, "failurePercentageThreshold is not implemented by Ward yet: only consecutive-error ejection applies")
}

// checkCACertCredential rejects caCertCredentialName: Ward would verify
// the server against no CA at all if it ignored it.
func checkCACertCredential(e *errs, p string, t *networking.ClientTLSSettings) {
	if t.GetCaCertCredentialName() == "" {
		return
	}
	if t.GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL || t.GetMode() == networking.ClientTLSSettings_DISABLE {
		e.add(p+".caCertCredentialName", "caCertCredentialName applies only to SIMPLE and MUTUAL modes")
		return
	}
	e.add(p+".caCertCredentialName", "caCertCredentialName is not supported by Ward: use credentialName (its <name>-cacert) or caCertificates, so the server certificate is verified")
}

// ecdhCurves are the curve names Envoy (BoringSSL) accepts, Istio's
// security.ValidECDHCurves. Istio does not check a Gateway's curves, so
// a misspelt one makes Envoy NACK the whole listener; Ward rejects it.
var ecdhCurves = map[string]bool{
	"P-224": true, "P-256": true, "P-384": true, "P-521": true,
	"X25519": true, "X25519Kyber768Draft00": true, "X25519MLKEM768": true,
}

// checkServerTLSExtras checks ecdhCurves, which Ward applies to the
// gateway's TLS parameters, and alpnProtocols: an ALPN override only
// tunes negotiation, so it is accepted with a warning.
func checkServerTLSExtras(e *errs, p string, t *networking.ServerTLSSettings) {
	for i, c := range t.GetEcdhCurves() {
		if !ecdhCurves[c] {
			e.add(idx(p+".ecdhCurves", i), "unknown ECDH curve %q (want one of P-224, P-256, P-384, P-521, X25519, X25519Kyber768Draft00, X25519MLKEM768)", c)
		}
	}
	if a := t.GetAlpnProtocols(); len(a) > 0 {
		checkEmptyValues(e, p+".alpnProtocols", a)
		e.warnCode(CodeNotImplemented, p+".alpnProtocols", "alpnProtocols is not implemented by Ward yet: the default ALPN (h2, http/1.1) is advertised")
	}
	if t.GetMode() == networking.ServerTLSSettings_SIMPLE && len(t.GetSubjectAltNames())+len(t.GetVerifyCertificateSpki())+len(t.GetVerifyCertificateHash()) > 0 {
		e.warn(p, "subjectAltNames, verifyCertificateSpki and verifyCertificateHash check client certificates, which SIMPLE TLS does not request: they are ignored (use MUTUAL or OPTIONAL_MUTUAL)")
	}
	minV, maxV := t.GetMinProtocolVersion(), t.GetMaxProtocolVersion()
	if minV != networking.ServerTLSSettings_TLS_AUTO && maxV != networking.ServerTLSSettings_TLS_AUTO && minV > maxV {
		e.add(p+".maxProtocolVersion", "maxProtocolVersion %s is below minProtocolVersion %s", maxV, minV)
	}
	if maxV != networking.ServerTLSSettings_TLS_AUTO && maxV < networking.ServerTLSSettings_TLSV1_2 && minV == networking.ServerTLSSettings_TLS_AUTO {
		e.add(p+".maxProtocolVersion", "maxProtocolVersion %s is below the default minimum TLSV1_2: set minProtocolVersion too", maxV)
	}
}
