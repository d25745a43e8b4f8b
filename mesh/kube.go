package mesh

// Merge builds one snapshot from the configs of several (nil ones are
// skipped) under mesh config m: how Kubernetes mode combines the
// Kubernetes source with a config directory running beside it. On a
// duplicate key the later snapshot's config wins. The configs are shared,
// not copied; snapshots never modify them.
func Merge(m MeshConfig, snaps ...*Snapshot) *Snapshot {
	var configs []*Config
	for _, s := range snaps {
		if s == nil {
			continue
		}
		for _, k := range Kinds() {
			configs = append(configs, s.All(k)...)
		}
	}
	return NewSnapshot(m, configs)
}
