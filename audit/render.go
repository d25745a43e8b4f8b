package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// Formats accepted by Render.
var Formats = []string{"table", "json", "yaml", "markdown", "html"}

// Render writes the report in format: "table" (or "text"), "json",
// "yaml" (the JSON schema in YAML), "markdown" (or "md") or "html".
func Render(w io.Writer, r *Report, format string) error {
	switch format {
	case "", "table", "text":
		return renderText(w, r)
	case "json":
		return RenderJSON(w, r)
	case "yaml":
		b, err := yaml.Marshal(r)
		if err != nil {
			return fmt.Errorf("render audit yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	case "markdown", "md":
		return renderMarkdown(w, r)
	case "html":
		return renderHTML(w, r)
	}
	return fmt.Errorf("render audit: unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// RenderJSON writes the stable JSON form (docs/audit.md).
func RenderJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// section is one titled table, shared by the text and Markdown renderers.
type section struct {
	title  string
	header []string
	rows   [][]string
	empty  string
}

func sections(r *Report) []section {
	return []section{summarySection(r), findingsSection(r), mtlsSection(r), readinessSection(r),
		authzSection(r), policiesSection(r), jwtSection(r), certSection(r), issuedNSSection(r), issuedSection(r), decisionSection(r), deniedSection(r),
		trafficSection(r), trafficPlaintextSection(r), trafficCallersSection(r), trafficDeniedSection(r), trafficOpenSection(r)}
}

func summarySection(r *Report) section {
	s := r.Summary
	return section{title: "Summary", header: []string{"metric", "value"}, rows: [][]string{
		{"namespaces", itoa(s.Namespaces)}, {"workloads", itoa(s.Workloads)}, {"ports", itoa(s.Ports)},
		{"STRICT ports", itoa(s.StrictPorts)}, {"ports accepting plaintext", itoa(s.PlaintextPorts)},
		{"workloads without identity", itoa(s.NoIdentity)}, {"ambient workloads", itoa(s.Ambient)}, {"workloads without ALLOW policy", itoa(s.OpenWorkloads)},
		{"rejected objects", itoa(s.Rejected)},
		{"findings (high/medium/low/info)", fmt.Sprintf("%d/%d/%d/%d", s.Findings["high"], s.Findings["medium"], s.Findings["low"], s.Findings["info"])},
	}}
}

func findingsSection(r *Report) section {
	sec := section{title: "Findings", header: []string{"severity", "code", "object", "message", "controls"}, empty: "no findings"}
	for _, f := range r.Findings {
		sec.rows = append(sec.rows, []string{string(f.Severity), f.Code, f.Object, f.Message, strings.Join(f.Controls, " ")})
	}
	return sec
}

func mtlsSection(r *Report) section {
	sec := section{title: "mTLS coverage", header: []string{"namespace", "workload", "dataplane", "identity", "port", "protocol", "mode", "from", "plaintext"}, empty: "no workloads"}
	for _, m := range r.MTLS {
		id := m.Identity
		if !m.HasIdentity {
			id = "NONE"
		}
		if len(m.Ports) == 0 {
			sec.rows = append(sec.rows, []string{m.Namespace, m.Workload, m.Dataplane, id, "-", "-", m.Mode, "-", "-"})
		}
		for _, p := range m.Ports {
			sec.rows = append(sec.rows, []string{m.Namespace, m.Workload, m.Dataplane, id, itoa(int(p.Port)), p.Protocol, p.Mode, p.From, yesno(p.Plaintext)})
		}
	}
	return sec
}

func readinessSection(r *Report) section {
	sec := section{title: "STRICT readiness", header: []string{"namespace", "mode", "ready", "blocker"}, empty: "no namespaces"}
	for _, n := range r.StrictReadiness {
		if len(n.Blockers) == 0 {
			sec.rows = append(sec.rows, []string{n.Namespace, n.Mode, "yes", "-"})
		}
		for _, b := range n.Blockers {
			sec.rows = append(sec.rows, []string{n.Namespace, n.Mode, "no", b})
		}
	}
	return sec
}

func authzSection(r *Report) section {
	sec := section{title: "Authorization coverage", header: []string{"namespace", "workload", "open", "allow", "deny", "custom", "audit", "dry-run"}, empty: "no workloads"}
	for _, a := range r.Authz {
		sec.rows = append(sec.rows, []string{a.Namespace, a.Workload, yesno(a.Open), list(a.Allow), list(a.Deny), list(a.Custom), list(a.Audit), list(a.DryRun)})
	}
	return sec
}

func policiesSection(r *Report) section {
	sec := section{title: "Authorization policies", header: []string{"policy", "action", "rules", "workloads", "allow-all", "wildcard principals", "dry-run"}, empty: "no AuthorizationPolicies"}
	for _, p := range r.Policies {
		act := p.Action
		if p.Invalid != "" {
			act += " (INVALID)"
		}
		sec.rows = append(sec.rows, []string{p.Policy, act, itoa(p.Rules), itoa(p.Workloads), yesno(p.AllowAll), yesno(p.WildcardPrincipals), yesno(p.DryRun)})
	}
	return sec
}

func jwtSection(r *Report) section {
	sec := section{title: "JWT-guarded workloads", header: []string{"namespace", "workload", "requestAuthentications", "issuers", "jwks", "token required"}, empty: "no RequestAuthentication applies anywhere"}
	for _, j := range r.JWT {
		sec.rows = append(sec.rows, []string{j.Namespace, j.Workload, list(j.Policies), list(j.Issuers), jwksList(j.JWKS), j.Required})
	}
	return sec
}

func certSection(r *Report) section {
	c := r.Certificates
	sec := section{title: "Certificates", header: []string{"kind", "subject", "serial", "not after", "expires in", "expiring"}, empty: c.Note}
	for _, x := range c.Roots {
		kind := "root"
		if x.Signing {
			kind = "root (signing)"
		}
		sec.rows = append(sec.rows, certRow(kind, x))
	}
	if c.Signer != nil {
		sec.rows = append(sec.rows, certRow("signer", *c.Signer))
	}
	if c.Available {
		sec.title += fmt.Sprintf(" (phase %s, mode %s)", c.Phase, c.Mode)
	}
	return sec
}

// maxIssuedRows is how many issued certificates the table, Markdown and
// HTML reports list (the soonest to expire); JSON lists all.
const maxIssuedRows = 20

func issuedNSSection(r *Report) section {
	c := r.Certificates
	sec := section{title: "Issued certificates by namespace", header: []string{"namespace", "certificates", "identities", "expiring soon"}, empty: c.Note}
	s := c.IssuedSummary
	if s == nil {
		if c.Note == "" {
			sec.empty = "no CA state given"
		}
		return sec
	}
	sec.title = fmt.Sprintf("Issued certificates by namespace (%d unexpired, %d identities, %d expiring soon; records of scope %s)", s.Total, s.Identities, s.ExpiringSoon, s.Scope)
	sec.empty = "no unexpired issued certificates"
	for _, n := range s.PerNamespace {
		ns := n.Namespace
		if ns == "" {
			ns = "(not a workload identity)"
		}
		sec.rows = append(sec.rows, []string{ns, itoa(n.Certificates), itoa(n.Identities), itoa(n.ExpiringSoon)})
	}
	return sec
}

func issuedSection(r *Report) section {
	c := r.Certificates
	sec := section{title: "Issued certificates expiring soonest", header: []string{"spiffe id", "serial", "not after", "expires in", "expiring", "method"}, empty: "no unexpired issued certificates"}
	if c.IssuedSummary == nil {
		sec.empty = "not listed (see above)"
		return sec
	}
	if len(c.Issued) > maxIssuedRows {
		sec.title += fmt.Sprintf(" (%d of %d; JSON lists all)", maxIssuedRows, len(c.Issued))
	}
	for _, x := range c.Issued[:min(len(c.Issued), maxIssuedRows)] {
		sec.rows = append(sec.rows, []string{x.SPIFFEID, x.Serial, x.NotAfter.Format("2006-01-02T15:04:05Z"), x.ExpiresIn, yesno(x.Expiring), dash(x.Method)})
	}
	return sec
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func certRow(kind string, x CertInfo) []string {
	return []string{kind, x.Subject, x.Serial, x.NotAfter.Format("2006-01-02T15:04:05Z"), x.ExpiresIn, yesno(x.Expiring)}
}

func decisionSection(r *Report) section {
	sec := section{title: "Decisions", header: []string{"workload", "allowed", "denied", "dry-run would deny"}, empty: "no decision log given (--decisions)"}
	d := r.Decisions
	if d == nil {
		return sec
	}
	sec.title = fmt.Sprintf("Decisions (%d total, %d allowed, %d denied, %d would-deny, %d errors)", d.Total, d.Allowed, d.Denied, d.WouldDeny, d.Errors)
	sec.empty = "no decisions in the period"
	for _, s := range d.PerWorkload {
		sec.rows = append(sec.rows, []string{s.Workload, itoa(s.Allowed), itoa(s.Denied), itoa(s.WouldDeny)})
	}
	return sec
}

func deniedSection(r *Report) section {
	sec := section{title: "Top denied", header: []string{"kind", "value", "count"}, empty: "no denials"}
	if r.Decisions == nil {
		sec.empty = "no decision log given (--decisions)"
		return sec
	}
	for _, c := range r.Decisions.TopDeniedCallers {
		sec.rows = append(sec.rows, []string{"caller", c.Value, itoa(c.Count)})
	}
	for _, c := range r.Decisions.TopDeniedPaths {
		sec.rows = append(sec.rows, []string{"path", c.Value, itoa(c.Count)})
	}
	return sec
}

func renderText(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "Ward audit report (%s) generated %s from %s\n", r.Schema, r.GeneratedAt.Format("2006-01-02T15:04:05Z"), r.Source)
	for _, s := range sections(r) {
		fmt.Fprintf(w, "\n== %s ==\n", s.title)
		if len(s.rows) == 0 {
			fmt.Fprintln(w, s.empty)
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(s.header, "\t")))
		for _, row := range s.rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("render audit text: %w", err)
		}
	}
	return nil
}

func renderMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Ward audit report\n\nSchema `%s`, generated %s from `%s`.\n", r.Schema, r.GeneratedAt.Format("2006-01-02T15:04:05Z"), r.Source)
	for _, s := range sections(r) {
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		if len(s.rows) == 0 {
			fmt.Fprintf(&b, "_%s_\n", mdCell(s.empty))
			continue
		}
		b.WriteString("| " + strings.Join(s.header, " | ") + " |\n|" + strings.Repeat(" --- |", len(s.header)) + "\n")
		for _, row := range s.rows {
			cells := make([]string, len(row))
			for i, c := range row {
				cells[i] = mdCell(c)
			}
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "*", `\*`, "_", `\_`).Replace(s)
}

func itoa(n int) string { return fmt.Sprint(n) }

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func jwksList(hs []IssuerHealth) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Issuer+": "+h.Status)
	}
	return list(out)
}
