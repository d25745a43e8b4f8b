// Package install applies Ward's rendered manifests (package deploy) to a
// cluster the way `ward install`, `ward uninstall` and upgrades need:
// server-side apply under one field manager in dependency order, waiting
// for CRDs to be served and the control plane to be ready, pruning what a
// new version no longer has, and reporting per object what changed.
//
// What install owns is every object of the kinds it applies that carries
// app.kubernetes.io/part-of=ward, in Ward's namespace or at cluster scope,
// except what Ward itself creates at run time (labelled
// app.kubernetes.io/managed-by=ward: the CA Secret, trust-bundle
// ConfigMaps). CRDs and the namespace are never pruned and are removed by
// uninstall only with Purge, so that users' Istio config and Ward's CA
// survive an uninstall, as with istioctl.
package install
