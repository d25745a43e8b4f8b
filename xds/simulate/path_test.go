package simulate

import (
	"testing"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

func TestNormalizePath(t *testing.T) {
	norm := PathOptions{Normalize: true}
	merge := PathOptions{Normalize: true, MergeSlashes: true}
	none := PathOptions{}
	esc := func(a hcm.HttpConnectionManager_PathWithEscapedSlashesAction) PathOptions {
		return PathOptions{Normalize: true, MergeSlashes: true, EscapedSlashes: a}
	}
	cases := []struct {
		in     string
		method string
		o      PathOptions
		want   string
		action PathAction
	}{
		{"/public/../admin", "GET", norm, "/admin", PathForward},
		{"/public/../admin", "GET", none, "/public/../admin", PathForward},
		{"//admin", "GET", norm, "//admin", PathForward},
		{"//admin", "GET", merge, "/admin", PathForward},
		{"/%61dmin", "GET", norm, "/admin", PathForward},
		{"/%61dmin", "GET", none, "/%61dmin", PathForward},
		{"/a/%2e%2e/admin", "GET", norm, "/admin", PathForward},
		{"/a/%2E./admin", "GET", norm, "/admin", PathForward},
		{"/a/./b/", "GET", norm, "/a/b/", PathForward},
		{"/a/..", "GET", norm, "/", PathForward},
		{"/..", "GET", norm, "/", PathForward},
		{`/a\..\admin`, "GET", norm, "/admin", PathForward},
		{"/a/../b?x=/../y", "GET", norm, "/b?x=/../y", PathForward},
		{"/a%3f", "GET", norm, "/a%3f", PathForward}, // kept as sent
		{"/users/{id}", "GET", norm, "/users/%7Bid%7D", PathForward},
		{"/users/{id}", "GET", none, "/users/{id}", PathForward},
		{"/a%00", "GET", norm, "/a%00", PathReject},
		{"/a b", "GET", none, "/a b", PathReject},
		{"/%%30%30", "GET", norm, "/%2500", PathForward},
		{"/%7e%2D%5f", "GET", norm, "/~-_", PathForward},
		{"/a%2Fb", "GET", norm, "/a%2Fb", PathForward},
		{"/a%zz", "GET", norm, "/a%zz", PathForward},
		{"/a%2e", "GET", norm, "/a.", PathForward},
		{"/admin%2Fx", "GET", esc(hcm.HttpConnectionManager_KEEP_UNCHANGED), "/admin%2Fx", PathForward},
		{"/admin%2Fx", "GET", esc(hcm.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT), "/admin%2Fx", PathForward},
		{"/admin%2Fx", "GET", esc(hcm.HttpConnectionManager_REJECT_REQUEST), "/admin%2Fx", PathReject},
		{"/admin%2Fx", "GET", esc(hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD), "/admin/x", PathForward},
		{"/admin%2fx", "GET", esc(hcm.HttpConnectionManager_UNESCAPE_AND_REDIRECT), "/admin/x", PathRedirect},
		{"/x%5C..%5Cadmin", "GET", esc(hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD), "/admin", PathForward},
		{"/admin", "GET", esc(hcm.HttpConnectionManager_UNESCAPE_AND_REDIRECT), "/admin", PathForward},
		{"admin", "GET", norm, "admin", PathReject},
		{"admin", "GET", none, "admin", PathReject},
		{"", "GET", none, "", PathReject},
		{"*", "OPTIONS", norm, "*", PathForward},
		{"*", "GET", norm, "*", PathReject},
		{"/a#frag", "GET", norm, "/a#frag", PathReject},
	}
	for _, tc := range cases {
		got, action := NormalizePath(tc.in, tc.method, tc.o)
		if got != tc.want || action != tc.action {
			t.Errorf("NormalizePath(%q, %s, %+v) = %q, %v; want %q, %v", tc.in, tc.method, tc.o, got, action, tc.want, tc.action)
		}
	}
}
