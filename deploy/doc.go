// Package deploy owns Ward's Kubernetes manifests: the Helm chart under
// helm/ward (templates and values.yaml, embedded) is their one source of
// truth, rendered here with a values struct for `ward manifest generate`
// and `ward install`, and written out as the kustomize base in this
// directory. Rendering is pure: no cluster, no files but the output.
//
// The templates use only what Go's text/template and Helm both provide
// plus Helm's toYaml, indent, nindent, quote and int, which Funcs
// implements with Helm's semantics; a test renders the chart with Helm's
// own engine and compares it with the kustomize base object for object.
package deploy
