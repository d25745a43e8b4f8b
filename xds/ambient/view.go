package ambient

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/mcp"
)

// view is one node's resources for one snapshot: per type URL, by name.
// It is immutable.
type view struct {
	snapVersion string
	res         map[string]map[string]mcp.Resource
	versions    map[string]string // per type: hash of the names and versions
}

// encoder marshals each config object of a snapshot once, whatever the
// number of nodes it is served to.
type encoder struct {
	snap *mesh.Snapshot
	mesh mcp.Resource
	objs map[*mesh.Config]mcp.Resource
}

func newEncoder(snap *mesh.Snapshot) (*encoder, error) {
	m, err := mcp.EncodeMesh(snap.Mesh())
	if err != nil {
		return nil, err
	}
	return &encoder{snap: snap, mesh: m, objs: map[*mesh.Config]mcp.Resource{}}, nil
}

// encode returns c's resource; the caller serialises calls.
func (e *encoder) encode(c *mesh.Config) (mcp.Resource, error) {
	if r, ok := e.objs[c]; ok {
		return r, nil
	}
	r, err := mcp.Encode(c)
	if err != nil {
		return r, err
	}
	e.objs[c] = r
	return r, nil
}

// Generate builds node's view of the encoder's snapshot.
func (e *encoder) generate(node string) (*view, error) {
	v := &view{snapVersion: e.snap.Version(), res: map[string]map[string]mcp.Resource{}, versions: map[string]string{}}
	v.res[mcp.TypeMeshConfig] = map[string]mcp.Resource{mcp.MeshConfigName: e.mesh}
	for url, list := range Scope(e.snap, node) {
		m := make(map[string]mcp.Resource, len(list))
		for _, c := range list {
			r, err := e.encode(c)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", node, err)
			}
			m[r.Name] = r
		}
		v.res[url] = m
	}
	for url, m := range v.res {
		v.versions[url] = hashVersions(m)
	}
	return v, nil
}

func hashVersions(m map[string]mcp.Resource) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%s\x00", n, m[n].Version)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
