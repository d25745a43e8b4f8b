package audit

import "sort"

// graph is the observed-traffic graph drawn as inline SVG: callers in
// the left column, called identities in the right, one line per edge
// and verdict, coloured by mTLS (green) or plaintext (orange, dashed)
// when allowed and red when denied. No scripts, no external assets. The
// shades differ from the bar charts' (more than the e2e screenshot
// check's tolerance), so a screenshot proves the graph itself painted.
type graph struct {
	Width, Height int
	Nodes         []graphNode
	Edges         []graphEdge
	// Omitted counts edges beyond maxGraphEdges, left out of the drawing
	// (the tables list them all).
	Omitted int
}

type graphNode struct {
	ID, Label, Title, Anchor string
	X, Y                     int
}

type graphEdge struct {
	Source, Destination string
	Class, Color, Dash  string
	Title               string
	X1, Y1, X2, Y2      int
}

const (
	maxGraphEdges = 200
	graphWidth    = 900
	graphLeft     = 300
	graphRight    = 600
	graphRow      = 26
)

func trafficGraph(t *Traffic) *graph {
	if t == nil || len(t.Edges) == 0 {
		return nil
	}
	edges := t.Edges
	g := &graph{Width: graphWidth}
	if len(edges) > maxGraphEdges {
		g.Omitted, edges = len(edges)-maxGraphEdges, edges[:maxGraphEdges]
	}
	srcY, dstY := map[string]int{}, map[string]int{}
	var srcs, dsts []string
	for _, e := range edges {
		if _, ok := srcY[e.Source]; !ok {
			srcY[e.Source] = 0
			srcs = append(srcs, e.Source)
		}
		if _, ok := dstY[e.Destination]; !ok {
			dstY[e.Destination] = 0
			dsts = append(dsts, e.Destination)
		}
	}
	g.Nodes = append(g.column(srcs, srcY, graphLeft, "end", "src"), g.column(dsts, dstY, graphRight, "start", "dst")...)
	rows := max(len(srcs), len(dsts))
	g.Height = 20 + rows*graphRow
	for _, e := range edges {
		g.Edges = append(g.Edges, edgeLines(e, srcY[e.Source], dstY[e.Destination])...)
	}
	return g
}

// column places names top to bottom (sorted by the edges' order, which
// is by destination then source) and records each one's y.
func (g *graph) column(names []string, ys map[string]int, x int, anchor, prefix string) []graphNode {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	var out []graphNode
	for i, n := range sorted {
		y := 20 + i*graphRow
		ys[n] = y
		out = append(out, graphNode{ID: prefix + "-" + itoa(i), Label: shortIdentity(n), Title: n, Anchor: anchor, X: x, Y: y})
	}
	return out
}

// edgeLines draws an edge's allowed calls and its denied calls as two
// lines, a little apart, so a partly denied edge shows both.
func edgeLines(e TrafficEdge, y1, y2 int) []graphEdge {
	base := graphEdge{Source: e.Source, Destination: e.Destination, X1: graphLeft + 6, X2: graphRight - 6, Y1: y1 - 4, Y2: y2 - 4}
	var out []graphEdge
	if e.Allowed > 0 {
		a := base
		a.Class, a.Color = "edge allowed mtls", "#43a047"
		if !e.MTLS {
			a.Class, a.Color, a.Dash = "edge allowed plaintext", "#fb8c00", "6 3"
		}
		a.Title = e.Source + " → " + e.Destination + " " + e.Protocol + ": " + itoa(e.Allowed) + " allowed"
		out = append(out, a)
	}
	if e.Denied > 0 {
		d := base
		d.Y1, d.Y2 = d.Y1+3, d.Y2+3
		d.Class, d.Color = "edge denied "+map[bool]string{true: "mtls", false: "plaintext"}[e.MTLS], "#e53935"
		if !e.MTLS {
			d.Dash = "6 3"
		}
		d.Title = e.Source + " → " + e.Destination + " " + e.Protocol + ": " + itoa(e.Denied) + " denied"
		out = append(out, d)
	}
	return out
}

// shortIdentity is <ns>/<sa> for a workload SPIFFE ID, else the name.
func shortIdentity(id string) string {
	if ns, sa, ok := identityParts(id); ok {
		return ns + "/" + sa
	}
	if len(id) > 40 {
		return id[:37] + "..."
	}
	return id
}
