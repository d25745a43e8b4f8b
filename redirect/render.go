package redirect

import (
	"fmt"
	"strings"
)

// Render writes the table for cfg in nft syntax (what `nft -f` reads and
// `nft list table inet ward` prints, give or take nft's own spelling).
func Render(cfg Config) string {
	cfg = cfg.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", cfg.Table)
	for i, c := range Plan(cfg) {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Hook != "" {
			fmt.Fprintf(&b, "\t\ttype nat hook %s priority dstnat; policy accept;\n", c.Hook)
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// String is r in nft syntax.
func (r Rule) String() string {
	var parts []string
	add := func(s string, args ...any) { parts = append(parts, fmt.Sprintf(s, args...)) }
	ip := map[int]string{4: "ip", 6: "ip6"}[r.family()]
	if r.OifLo {
		add(`oifname "lo"`)
	}
	if r.Src.IsValid() {
		add("%s saddr %s", ip, r.Src)
	}
	if r.Dst.IsValid() {
		add("%s daddr %s%s", ip, neg(r.DstNot), r.Dst)
	}
	switch {
	case r.DPort != 0:
		add("tcp dport %d", r.DPort)
	case r.TCP:
		add("meta l4proto tcp")
	}
	if o := r.Owner; o != nil {
		key := map[bool]string{false: "skuid", true: "skgid"}[o.GID]
		add("meta %s %s%d", key, neg(o.Not), o.ID)
	}
	switch v := r.Verdict; {
	case v.Redirect != 0:
		add("redirect to :%d", v.Redirect)
	case v.Jump != "":
		add("jump %s", v.Jump)
	default:
		add("return")
	}
	return strings.Join(parts, " ")
}

func neg(not bool) string {
	if not {
		return "!= "
	}
	return ""
}
