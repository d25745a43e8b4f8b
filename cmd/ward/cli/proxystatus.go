package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/internal/editdist"
	"github.com/wardmesh/ward/xds"
)

// defaultServer is ward serve's debug address (/debug/..., /metrics).
const defaultServer = "http://127.0.0.1:15014"

// Sync states of one resource type of one proxy (istioctl's words).
const (
	stateSynced  = "SYNCED"   // the proxy ACKed the latest version
	stateStale   = "STALE"    // a newer version is sent or due, not yet ACKed
	stateNack    = "NACK"     // the proxy rejected the version last sent
	stateNotSent = "NOT SENT" // the proxy never asked for this type
)

// syncTypes are the xDS types in istioctl's column order.
var syncTypes = []string{"cds", "lds", "eds", "rds"}

type proxyStatusOptions struct {
	server string
	output string
	now    func() time.Time
}

func newProxyStatusCmd() *cobra.Command {
	o := &proxyStatusOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "proxy-status [PROXY_ID]",
		Short: "Show whether each connected proxy has ACKed its latest config (SYNCED/STALE/NACK/NOT SENT)",
		Long: "Read a running ward serve's /debug/syncz and /debug/nodez and print, per connected proxy and xDS type\n" +
			"(CDS, LDS, EDS, RDS): SYNCED (the latest version is ACKed), STALE (a newer version is\n" +
			"sent or due but not ACKed; with how long), NACK (the proxy rejected the version last\n" +
			"sent; it keeps running its previous config) or NOT SENT (the proxy never asked for it).\n" +
			"Ambient node proxies (type node, named node~<node>) follow, with their config types\n" +
			"(MeshConfig, workloads, services, PeerAuthentications, AuthorizationPolicies).\n" +
			"With PROXY_ID: that proxy's versions and full NACK errors.",
		Args: cobra.MaximumNArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeProxyIDs("server")(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), id)
		},
	}
	cmd.Flags().StringVar(&o.server, "server", defaultServer, "debug address of a running ward serve")
	addOutputFlag(cmd, &o.output, stdFormats...)
	return cmd
}

// proxySync is one proxy's status as proxy-status prints it.
type proxySync struct {
	Proxy           string               `json:"proxy"`
	Type            string               `json:"type"`
	Namespace       string               `json:"namespace"`
	ConnectedAt     time.Time            `json:"connectedAt"`
	SnapshotVersion string               `json:"snapshotVersion,omitempty"`
	Types           map[string]typeState `json:"types"`
}

// typeState is the sync state of one xDS type.
type typeState struct {
	Status   string `json:"status"`
	Latest   string `json:"latest,omitempty"`
	Sent     string `json:"sent,omitempty"`
	Acked    string `json:"acked,omitempty"`
	StaleFor string `json:"staleFor,omitempty"`
	Nacks    int    `json:"nacks,omitempty"`
	// Error is the proxy's NACK message while in state NACK.
	Error string `json:"error,omitempty"`
}

func (o *proxyStatusOptions) run(ctx context.Context, w io.Writer, id string) error {
	var rows []xds.SyncStatus
	if err := getJSON(ctx, o.server, "/debug/syncz", &rows); err != nil {
		return fmt.Errorf("proxy-status: %w", err)
	}
	all := make([]proxySync, 0, len(rows))
	for _, r := range rows {
		all = append(all, proxySyncOf(r, o.now()))
	}
	nodeRows, err := fetchNodes(ctx, o.server)
	if err != nil {
		return fmt.Errorf("proxy-status: %w", err)
	}
	var nodes []proxySync
	for _, n := range nodeRows {
		nodes = append(nodes, nodeSyncOf(n, o.now()))
	}
	if id == "" {
		both := append(all, nodes...)
		return writeData(w, o.output, both, func(w io.Writer) error {
			if len(all) > 0 || len(nodes) == 0 {
				if err := proxyTable(w, all, o.now()); err != nil {
					return err
				}
			}
			return nodeTable(w, nodes, o.now())
		})
	}
	for _, p := range all {
		if p.Proxy == id {
			return writeData(w, o.output, p, func(w io.Writer) error { return proxyDetail(w, p, o.now()) })
		}
	}
	for _, p := range nodes {
		if p.Proxy == id {
			return writeData(w, o.output, p, func(w io.Writer) error { return nodeDetail(w, p, o.now()) })
		}
	}
	all = append(all, nodes...)
	return unknownProxyError(id, all)
}

// proxySyncOf classifies every type of one syncz row at time now.
func proxySyncOf(r xds.SyncStatus, now time.Time) proxySync {
	p := proxySync{Proxy: r.Proxy, Type: string(r.Type), Namespace: r.Namespace, ConnectedAt: r.ConnectedAt,
		SnapshotVersion: r.SnapshotVersion, Types: map[string]typeState{}}
	for _, t := range syncTypes {
		p.Types[t] = classify(r.Types[t], now)
	}
	return p
}

// classify decides a type's state the way istioctl proxy-status does:
// compare what the proxy ACKed with what was sent and what is current.
func classify(ts *xds.TypeSync, now time.Time) typeState {
	if ts == nil || ts.Sent == "" {
		st := typeState{Status: stateNotSent}
		if ts != nil {
			st.Latest = ts.Latest
		}
		return st
	}
	st := typeState{Latest: ts.Latest, Sent: ts.Sent, Acked: ts.Acked, Nacks: ts.Nacks}
	switch {
	case ts.NackedVer != "" && ts.NackedVer == ts.Sent && ts.Acked != ts.Sent:
		st.Status, st.Error = stateNack, ts.LastNack
	case ts.Acked == ts.Sent && (ts.Latest == "" || ts.Latest == ts.Sent):
		st.Status = stateSynced
	default:
		st.Status = stateStale
		if ts.PendingSince != nil {
			st.StaleFor = now.Sub(*ts.PendingSince).Round(time.Second).String()
		}
	}
	return st
}

func (s typeState) cell() string {
	if s.Status == stateStale && s.StaleFor != "" {
		return fmt.Sprintf("%s (%s)", s.Status, s.StaleFor)
	}
	return s.Status
}

func proxyTable(w io.Writer, all []proxySync, now time.Time) error {
	if len(all) == 0 {
		_, err := fmt.Fprintln(w, "no proxies connected")
		return err
	}
	return syncTable(w, all, now, "NAME\tTYPE\tNAMESPACE\tCDS\tLDS\tEDS\tRDS\tSNAPSHOT\tCONNECTED", syncTypes,
		func(p proxySync) string { return p.Proxy + "\t" + p.Type + "\t" + p.Namespace }, "the proxy")
}

// syncTable prints one row per proxy: its leading columns, a sync cell
// per type, snapshot and age; then the rejected types' errors.
func syncTable(w io.Writer, rows []proxySync, now time.Time, header string, types []string, lead func(proxySync) string, who string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	var nacks []string
	for _, p := range rows {
		fmt.Fprint(tw, lead(p))
		for _, t := range types {
			fmt.Fprintf(tw, "\t%s", p.Types[t].cell())
			if st := p.Types[t]; st.Status == stateNack {
				nacks = append(nacks, fmt.Sprintf("%s %s: %s", p.Proxy, strings.ToUpper(t), shorten(st.Error, 100)))
			}
		}
		fmt.Fprintf(tw, "\t%s\t%s ago\n", shorten(p.SnapshotVersion, 12), age(p.ConnectedAt, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(nacks) > 0 {
		fmt.Fprintf(w, "\nrejected (%s keeps its previous config; `ward proxy-status ID` shows the full error):\n", who)
		for _, n := range nacks {
			fmt.Fprintln(w, "  "+n)
		}
	}
	return nil
}

func proxyDetail(w io.Writer, p proxySync, now time.Time) error {
	fmt.Fprintf(w, "Proxy:      %s\nType:       %s\nNamespace:  %s\n", p.Proxy, p.Type, p.Namespace)
	fmt.Fprintf(w, "Connected:  %s (%s ago)\nSnapshot:   %s\n\n", p.ConnectedAt.Format(time.RFC3339), age(p.ConnectedAt, now), p.SnapshotVersion)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSTATUS\tLATEST\tSENT\tACKED\tNACKS")
	for _, t := range syncTypes {
		s := p.Types[t]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", strings.ToUpper(t), s.cell(), dash(s.Latest), dash(s.Sent), dash(s.Acked), s.Nacks)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range syncTypes {
		if s := p.Types[t]; s.Status == stateNack {
			fmt.Fprintf(w, "\n%s rejected version %s:\n  %s\n", strings.ToUpper(t), s.Sent, s.Error)
		}
	}
	return nil
}

func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shorten cuts s to n runes with an ellipsis, on one line.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// unknownProxyError names the proxies closest to id.
func unknownProxyError(id string, all []proxySync) error {
	ids := make([]string, len(all))
	for i, p := range all {
		ids[i] = p.Proxy
	}
	if close := closeMatches(id, ids, 5); len(close) > 0 {
		return fmt.Errorf("proxy-status: unknown proxy %q; did you mean:\n  %s", id, strings.Join(close, "\n  "))
	}
	return fmt.Errorf("proxy-status: unknown proxy %q (%d connected; run `ward proxy-status` to list them)", id, len(all))
}

// closeMatches returns up to n candidates that contain id (or its parts
// between "~"), or are within a small edit distance of it, closest first.
func closeMatches(id string, cands []string, n int) []string {
	type scored struct {
		s string
		d int
	}
	var out []scored
	lid := strings.ToLower(id)
	for _, c := range cands {
		lc := strings.ToLower(c)
		d := editdist.OSA(lid, lc)
		switch {
		case strings.Contains(lc, lid) || strings.Contains(lid, lc):
			out = append(out, scored{c, 0})
		case d <= max(3, len(id)/4):
			out = append(out, scored{c, d})
		case partMatch(lid, lc):
			out = append(out, scored{c, d})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].d < out[j].d })
	var res []string
	for i := 0; i < len(out) && i < n; i++ {
		res = append(res, out[i].s)
	}
	return res
}

// partMatch: some "~"- or "."-separated part of id (3+ chars) occurs in c.
func partMatch(id, c string) bool {
	for _, part := range strings.FieldsFunc(id, func(r rune) bool { return r == '~' || r == '.' }) {
		if len(part) >= 3 && strings.Contains(c, part) {
			return true
		}
	}
	return false
}

// httpStatusError is a debug endpoint's non-200 answer.
type httpStatusError struct {
	url, status, body string
	code              int
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("get %s: %s: %s", e.url, e.status, e.body)
}

// getJSON GETs server+path and decodes the JSON body into v.
func getJSON(ctx context.Context, server, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u := strings.TrimRight(server, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("get %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s (is ward serve running? set --server): %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &httpStatusError{url: u, status: resp.Status, code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", u, err)
	}
	return nil
}

// completeProxyIDs completes proxy ids from the syncz of the server named
// by the flag serverFlag, when it answers within two seconds.
func completeProxyIDs(serverFlag string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		server, _ := cmd.Flags().GetString(serverFlag)
		if server == "" {
			server = defaultServer
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var rows []xds.SyncStatus
		if err := getJSON(ctx, server, "/debug/syncz", &rows); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, r := range rows {
			if strings.HasPrefix(r.Proxy, toComplete) {
				out = append(out, r.Proxy+"\t"+string(r.Type)+" "+r.Namespace)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
