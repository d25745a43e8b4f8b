package audit

import (
	"fmt"
	"html/template"
	"io"
)

// bar is one bar of an inline SVG chart.
type bar struct {
	Label string
	Value int
	Color string
	Y     int
	Width int
}

// chart is a horizontal bar chart drawn as inline SVG (no scripts, no
// external assets).
type chart struct {
	ID     string
	Title  string
	Bars   []bar
	Height int
}

const chartWidth = 320

func newChart(id, title string, bars []bar) chart {
	max := 0
	for _, b := range bars {
		if b.Value > max {
			max = b.Value
		}
	}
	for i := range bars {
		bars[i].Y = 8 + i*26
		if max > 0 {
			bars[i].Width = bars[i].Value * chartWidth / max
		}
	}
	return chart{ID: id, Title: title, Bars: bars, Height: 16 + len(bars)*26}
}

func charts(r *Report) []chart {
	s := r.Summary
	out := []chart{
		newChart("chart-findings", "Findings by severity", []bar{
			{Label: "high", Value: s.Findings["high"], Color: "#c62828"}, {Label: "medium", Value: s.Findings["medium"], Color: "#ef6c00"},
			{Label: "low", Value: s.Findings["low"], Color: "#f9a825"}, {Label: "info", Value: s.Findings["info"], Color: "#1565c0"}}),
		newChart("chart-mtls", "Workload ports by mTLS", []bar{
			{Label: "STRICT", Value: s.StrictPorts, Color: "#2e7d32"}, {Label: "plaintext", Value: s.PlaintextPorts, Color: "#c62828"}}),
	}
	if d := r.Decisions; d != nil {
		out = append(out, newChart("chart-decisions", "Decisions", []bar{
			{Label: "allowed", Value: d.Allowed, Color: "#2e7d32"}, {Label: "denied", Value: d.Denied, Color: "#c62828"},
			{Label: "would deny", Value: d.WouldDeny, Color: "#ef6c00"}}))
	}
	return out
}

var htmlTmpl = template.Must(template.New("audit").Funcs(template.FuncMap{"sevclass": func(s string) string { return "sev-" + s }}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ward audit report</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em;color:#212121;background:#fff}
h1{margin-bottom:0}.meta{color:#616161;margin-top:.2em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f5f5f5}.charts{display:flex;flex-wrap:wrap;gap:2em}
.sev-high{color:#fff;background:#c62828}.sev-medium{background:#ffcc80}.sev-low{background:#fff59d}.sev-info{background:#bbdefb}
figure{margin:0}figcaption{font-weight:600;margin-bottom:.3em}
</style>
</head>
<body>
<h1>Ward audit report</h1>
<p class="meta">Schema <code>{{.R.Schema}}</code>, generated {{.R.GeneratedAt.Format "2006-01-02T15:04:05Z"}} from <code>{{.R.Source}}</code>.</p>
<div class="charts">
{{range .Charts}}<figure id="{{.ID}}"><figcaption>{{.Title}}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" width="460" height="{{.Height}}" role="img" aria-label="{{.Title}}">
{{range .Bars}}<text x="0" y="{{.Y}}" dy="14" font-size="12">{{.Label}}</text><rect x="90" y="{{.Y}}" width="{{.Width}}" height="18" fill="{{.Color}}"><title>{{.Label}}: {{.Value}}</title></rect><text x="{{.Width}}" dx="96" y="{{.Y}}" dy="14" font-size="12">{{.Value}}</text>
{{end}}</svg></figure>
{{end}}</div>
{{with .Graph}}<h2 id="traffic-graph-title">Who calls whom (observed)</h2>
<figure><figcaption>Callers (left) and called identities (right); green mTLS, orange dashed plaintext, red denied{{if .Omitted}}; {{.Omitted}} more edges are only in the tables{{end}}.</figcaption>
<svg id="traffic-graph" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" role="img" aria-label="Observed traffic graph">
{{range .Edges}}<line class="{{.Class}}" data-source="{{.Source}}" data-destination="{{.Destination}}" x1="{{.X1}}" y1="{{.Y1}}" x2="{{.X2}}" y2="{{.Y2}}" stroke="{{.Color}}" stroke-width="2"{{if .Dash}} stroke-dasharray="{{.Dash}}"{{end}}><title>{{.Title}}</title></line>
{{end}}{{range .Nodes}}<text class="node" id="{{.ID}}" x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}" font-size="12"><title>{{.Title}}</title>{{.Label}}</text>
{{end}}</svg></figure>
{{end}}<h2 id="findings">Findings</h2>
{{if .R.Findings}}<table><tr><th>severity</th><th>code</th><th>object</th><th>message</th><th>controls</th></tr>
{{range .R.Findings}}<tr><td class="{{sevclass (print .Severity)}}">{{.Severity}}</td><td>{{.Code}}</td><td>{{.Object}}</td><td>{{.Message}}</td><td>{{range .Controls}}{{.}} {{end}}</td></tr>
{{end}}</table>{{else}}<p>No findings.</p>{{end}}
{{range .Sections}}<h2>{{.Title}}</h2>
{{if .Rows}}<table><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>{{else}}<p>{{.Empty}}</p>{{end}}
{{end}}</body>
</html>
`))

type htmlSection struct {
	Title, Empty string
	Header       []string
	Rows         [][]string
}

func renderHTML(w io.Writer, r *Report) error {
	var secs []htmlSection
	for _, s := range sections(r) {
		if s.title == "Findings" {
			continue
		}
		secs = append(secs, htmlSection{Title: s.title, Empty: s.empty, Header: s.header, Rows: s.rows})
	}
	data := struct {
		R        *Report
		Charts   []chart
		Sections []htmlSection
		Graph    *graph
	}{r, charts(r), secs, trafficGraph(r.Traffic)}
	if err := htmlTmpl.Execute(w, data); err != nil {
		return fmt.Errorf("render audit html: %w", err)
	}
	return nil
}
