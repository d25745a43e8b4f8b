package cli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/agent"
	"github.com/wardmesh/ward/sds"
)

// Secret types as the secrets table prints them.
const (
	secretCertChain = "Cert Chain"
	secretCA        = "CA"
)

type secretsOptions struct {
	sdsSocket, certDir string
	timeout            time.Duration
	output             string
	now                func() time.Time
}

func newProxyConfigSecretsCmd() *cobra.Command {
	o := &secretsOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "secrets [NODE_PROXY]",
		Short: "Show the identity a workload holds: its certificate chain and trust bundle",
		Long: `Show the workload certificate ("default": SPIFFE ID, serial, validity,
issuer) and the trust bundle ("ROOTCA": the roots) that a workload holds,
read from the agent's SDS socket (--sds-socket; ward asks for the secrets
as Envoy does) or from the files ward agent --output-dir writes for a
proxyless workload (--cert-dir: cert-chain.pem, root-cert.pem).

For an ambient node proxy (NODE_PROXY node~<node>, or --proxy, with
--server): the certificate of each of its workloads' identities, from the
CA's issuance records (serial, expiry; the CA records which node asked).

Private keys are never printed or kept: the key in the SDS response is
wiped on receipt, and key.pem is never read.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if id := nodeProxyArg(cmd, args); id != "" {
				return runNodeSecrets(cmd, id, o)
			}
			if len(args) > 0 {
				return fmt.Errorf("proxy-config secrets: %q is not a node proxy (node~<node>); for a workload give --sds-socket PATH or --cert-dir DIR", args[0])
			}
			if err := noProxySource(cmd); err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.sdsSocket, "sds-socket", "", "the agent's SDS Unix socket (e.g. STATE/var/run/ward/sds.sock)")
	f.StringVar(&o.certDir, "cert-dir", "", "a proxyless workload's certificate dir (ward agent --output-dir)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the SDS secrets")
	addOutputFlag(cmd, &o.output, stdFormats...)
	cmd.MarkFlagsMutuallyExclusive("sds-socket", "cert-dir")
	_ = cmd.MarkFlagFilename("sds-socket", "sock")
	_ = cmd.MarkFlagDirname("cert-dir")
	return cmd
}

// nodeProxyArg returns the node proxy secrets is asked about: the
// argument, or --proxy when it names a node proxy.
func nodeProxyArg(cmd *cobra.Command, args []string) string {
	if len(args) == 1 && strings.HasPrefix(args[0], nodeProxyPrefix) {
		return args[0]
	}
	if p, _ := cmd.Flags().GetString("proxy"); strings.HasPrefix(p, nodeProxyPrefix) && len(args) == 0 {
		return p
	}
	return ""
}

func runNodeSecrets(cmd *cobra.Command, id string, o *secretsOptions) error {
	server, _ := cmd.Flags().GetString("server")
	if server == "" {
		return errors.New("proxy-config secrets: a node proxy needs --server URL")
	}
	ss, err := nodeSecrets(cmd.Context(), server, id, o.now())
	if err != nil {
		return err
	}
	return writeData(cmd.OutOrStdout(), o.output, ss, func(w io.Writer) error { return nodeSecretTable(w, ss) })
}

// noProxySource rejects proxy-config's source flags (inherited from the
// parent), which secrets does not read, instead of ignoring them.
func noProxySource(cmd *cobra.Command) error {
	for _, f := range []string{"config", "server", "proxy", "type", "namespace", "ip", "labels"} {
		if cmd.Flags().Changed(f) {
			return fmt.Errorf("proxy-config secrets: --%s does not apply; give --sds-socket PATH or --cert-dir DIR", f)
		}
	}
	return nil
}

// secretView is one secret: the workload's chain or the trust bundle.
type secretView struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Source string `json:"source"`
	// Certificates are the chain (leaf first) or the roots.
	Certificates []certView `json:"certificates"`
}

// certView is what secrets shows of one certificate (never a key).
type certView struct {
	Subject   string    `json:"subject"`
	SPIFFEID  string    `json:"spiffeID,omitempty"`
	Serial    string    `json:"serial"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	ExpiresIn string    `json:"expiresIn"`
	IsCA      bool      `json:"isCA"`
}

func (o *secretsOptions) run(ctx context.Context, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var (
		pems map[string][]byte
		src  string
		err  error
	)
	switch {
	case o.sdsSocket != "":
		src = "sds:" + o.sdsSocket
		pems, err = fetchSDSSecrets(ctx, o.sdsSocket, o.timeout)
	case o.certDir != "":
		src = "files:" + o.certDir
		pems, err = readCertDir(o.certDir)
	default:
		return errors.New("proxy-config secrets: give --sds-socket PATH or --cert-dir DIR")
	}
	if err != nil {
		return err
	}
	views, err := secretViews(pems, src, o.now())
	if err != nil {
		return err
	}
	return writeData(w, o.output, views, func(w io.Writer) error { return secretTable(w, views) })
}

// fetchSDSSecrets asks the SDS server on socket for "default" and
// "ROOTCA" as Envoy does (ACKing each response) until both arrived or
// timeout passes. It returns their PEM certificates only: the private key
// is wiped from the response as soon as it is decoded.
func fetchSDSSecrets(ctx context.Context, socket string, timeout time.Duration) (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cc, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("proxy-config secrets: dial %s: %w", socket, err)
	}
	defer cc.Close()
	st, err := secretservice.NewSecretDiscoveryServiceClient(cc).StreamSecrets(ctx)
	if err != nil {
		return nil, fmt.Errorf("proxy-config secrets: open sds stream on %s: %w", socket, err)
	}
	names := []string{sds.SecretDefault, sds.SecretRootCA}
	req := &discovery.DiscoveryRequest{Node: &core.Node{Id: "ward-proxy-config"}, TypeUrl: resourcev3.SecretType, ResourceNames: names}
	got := map[string][]byte{}
	for len(got) < len(names) {
		if err := st.Send(req); err != nil {
			return nil, fmt.Errorf("proxy-config secrets: sds request on %s: %w", socket, err)
		}
		resp, err := st.Recv()
		if err != nil {
			return nil, fmt.Errorf("proxy-config secrets: sds on %s (have %s of %s): %w", socket, keys(got), strings.Join(names, ", "), err)
		}
		for _, a := range resp.GetResources() {
			name, pem, err := certsOfSecret(a.GetValue())
			clear(a.Value) // the "default" secret's serialized form holds the key
			if err != nil {
				return nil, fmt.Errorf("proxy-config secrets: sds on %s: %w", socket, err)
			}
			if slices.Contains(names, name) {
				got[name] = pem
			}
		}
		req = &discovery.DiscoveryRequest{Node: req.Node, TypeUrl: resourcev3.SecretType, ResourceNames: names,
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
	}
	return got, nil
}

// certsOfSecret decodes a serialized Secret and returns its name and
// certificates (chain or trusted CA), wiping any private key bytes.
func certsOfSecret(b []byte) (string, []byte, error) {
	var s tlsv3.Secret
	if err := proto.Unmarshal(b, &s); err != nil {
		return "", nil, fmt.Errorf("decode secret: %w", err)
	}
	if tc := s.GetTlsCertificate(); tc != nil {
		if k := tc.GetPrivateKey(); k != nil {
			clear(k.GetInlineBytes())
			tc.PrivateKey = nil
		}
		return s.GetName(), tc.GetCertificateChain().GetInlineBytes(), nil
	}
	if vc := s.GetValidationContext(); vc != nil {
		return s.GetName(), vc.GetTrustedCa().GetInlineBytes(), nil
	}
	return s.GetName(), nil, nil
}

func keys(m map[string][]byte) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// readCertDir reads the chain and bundle ward agent wrote; key.pem is
// deliberately never opened.
func readCertDir(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, f := range []struct{ name, file string }{{sds.SecretDefault, agent.FileCertChain}, {sds.SecretRootCA, agent.FileRoots}} {
		b, err := os.ReadFile(filepath.Join(dir, f.file))
		if err != nil {
			return nil, fmt.Errorf("proxy-config secrets: read %s: %w", f.file, err)
		}
		out[f.name] = b
	}
	return out, nil
}

// secretViews parses the PEM of "default" and "ROOTCA" (in that order).
func secretViews(pems map[string][]byte, src string, now time.Time) ([]secretView, error) {
	var out []secretView
	for _, s := range []struct{ name, typ string }{{sds.SecretDefault, secretCertChain}, {sds.SecretRootCA, secretCA}} {
		certs, err := parseCerts(pems[s.name])
		if err != nil {
			return nil, fmt.Errorf("proxy-config secrets: %s: %w", s.name, err)
		}
		if len(certs) == 0 {
			return nil, fmt.Errorf("proxy-config secrets: %s holds no certificate", s.name)
		}
		v := secretView{Name: s.name, Type: s.typ, Source: src}
		for _, c := range certs {
			v.Certificates = append(v.Certificates, viewOf(c, now))
		}
		out = append(out, v)
	}
	return out, nil
}

// parseCerts parses the CERTIFICATE blocks of b; any other block (a key
// that should not be there) is skipped, never kept.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			clear(blk.Bytes)
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
}

func viewOf(c *x509.Certificate, now time.Time) certView {
	v := certView{Subject: c.Subject.String(), Serial: fmt.Sprintf("%x", c.SerialNumber), Issuer: c.Issuer.String(),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), ExpiresIn: expiresIn(c.NotAfter, now), IsCA: c.IsCA}
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" {
			v.SPIFFEID = u.String()
		}
	}
	return v
}

// expiresIn is the time left, or how long ago it expired.
func expiresIn(notAfter, now time.Time) string {
	d := notAfter.Sub(now)
	if d < 0 {
		return "expired " + humanDuration(-d) + " ago"
	}
	return humanDuration(d)
}

// humanDuration rounds d for people: "3649d23h", "23h1m", "42s".
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= 2*day:
		d = d.Round(time.Hour)
		return fmt.Sprintf("%dd%dh", d/day, (d%day)/time.Hour)
	case d >= time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
	return d.Round(time.Second).String()
}

// secretTable prints one row per certificate, then the bundle's roots.
func secretTable(w io.Writer, views []secretView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row(tw, "RESOURCE NAME", "TYPE", "SPIFFE ID / SUBJECT", "SERIAL", "NOT BEFORE", "NOT AFTER", "EXPIRES IN", "ISSUER")
	for _, v := range views {
		for _, c := range v.Certificates {
			id := c.SPIFFEID
			if id == "" {
				id = c.Subject
			}
			row(tw, v.Name, v.Type, id, c.Serial, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), c.ExpiresIn, orNone(c.Issuer))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range views {
		if v.Type != secretCA {
			continue
		}
		subjects := make([]string, 0, len(v.Certificates))
		for _, c := range v.Certificates {
			subjects = append(subjects, c.Subject)
		}
		fmt.Fprintf(w, "\n%s: %d root(s): %s\n", v.Name, len(v.Certificates), strings.Join(subjects, "; "))
	}
	return nil
}
