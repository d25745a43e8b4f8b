// Package cni hands pods' network namespaces from the container runtime to
// the node proxy, as Istio's in-pod mode does with istio-cni and ztunnel:
// Plugin is the CNI plugin side (`ward cni`, chained after the primary
// CNI plugin), Server the node proxy's Unix socket that receives its
// events. The plugin never touches a namespace itself.
package cni
