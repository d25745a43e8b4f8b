package redirect

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Error is a failed netlink operation: Op names it ("install", "remove",
// "list"), Table the table, NetNS the namespace ("" the caller's).
type Error struct {
	Op, Table, NetNS string
	Err              error
}

func (e *Error) Error() string {
	where := ""
	if e.NetNS != "" {
		where = " in network namespace " + e.NetNS
	}
	return fmt.Sprintf("redirect: %s nf_tables table inet %s%s: %v%s", e.Op, e.Table, where, e.Err, hint(e.Err))
}

func (e *Error) Unwrap() error { return e.Err }

// Unavailable reports whether err says the kernel has no nf_tables (or no
// nat support for it) for us.
func Unavailable(err error) bool {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return false
	}
	return errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT)
}

func hint(err error) string {
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe): // the namespace file, not nf_tables
		return ""
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return " (changing nf_tables needs CAP_NET_ADMIN in the namespace's user namespace)"
	case Unavailable(err):
		return " (is nf_tables with nat — nf_tables, nft_chain_nat, nft_redir — available in this kernel?)"
	}
	return ""
}

// Install replaces cfg's table with the capture for cfg in one netlink
// transaction: the table is created, deleted and created again with its
// chains and rules, so a re-run (an init container restarted) leaves
// exactly one table and traffic never sees a half-built one.
func Install(cfg Config) error {
	cfg = cfg.withDefaults()
	return apply(cfg, "install", func(c *nftables.Conn, t *nftables.Table) {
		t = c.AddTable(t)
		plan := Plan(cfg)
		chains := make([]*nftables.Chain, len(plan))
		for i, ch := range plan { // every chain before a rule jumps to it
			chains[i] = c.AddChain(chain(t, ch))
		}
		for i, ch := range plan {
			for _, r := range ch.Rules {
				c.AddRule(&nftables.Rule{Table: t, Chain: chains[i], Exprs: exprs(r)})
			}
		}
	})
}

// Remove deletes cfg's table, if there is one.
func Remove(cfg Config) error {
	return apply(cfg.withDefaults(), "remove", func(*nftables.Conn, *nftables.Table) {})
}

// Installed reports whether cfg's table exists.
func Installed(cfg Config) (bool, error) {
	cfg = cfg.withDefaults()
	var found bool
	err := withConn(cfg, func(c *nftables.Conn) error {
		ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		for _, t := range ts {
			found = found || t.Name == cfg.Table
		}
		return err
	})
	if err != nil {
		return false, &Error{Op: "list", Table: cfg.Table, NetNS: cfg.NetNS, Err: err}
	}
	return found, nil
}

// apply runs one batch: add (so that the delete cannot fail), delete,
// then whatever build adds.
func apply(cfg Config, op string, build func(*nftables.Conn, *nftables.Table)) error {
	err := withConn(cfg, func(c *nftables.Conn) error {
		t := &nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyINet}
		c.AddTable(t)
		c.DelTable(t)
		build(c, t)
		return c.Flush()
	})
	if err != nil {
		return &Error{Op: op, Table: cfg.Table, NetNS: cfg.NetNS, Err: err}
	}
	return nil
}

func withConn(cfg Config, fn func(*nftables.Conn) error) error {
	var opts []nftables.ConnOption
	if cfg.NetNS != "" {
		f, err := os.Open(cfg.NetNS)
		if err != nil {
			return fmt.Errorf("open network namespace: %w", err)
		}
		defer f.Close()
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return err
	}
	return fn(c)
}

func chain(t *nftables.Table, ch Chain) *nftables.Chain {
	c := &nftables.Chain{Name: ch.Name, Table: t}
	if ch.Hook == "" {
		return c
	}
	c.Type = nftables.ChainTypeNAT
	c.Priority = nftables.ChainPriorityNATDest
	c.Hooknum = nftables.ChainHookOutput
	if ch.Hook == "prerouting" {
		c.Hooknum = nftables.ChainHookPrerouting
	}
	accept := nftables.ChainPolicyAccept
	c.Policy = &accept
	return c
}

// exprs compiles r; every comparison uses register 1.
func exprs(r Rule) []expr.Any {
	var out []expr.Any
	cmp := func(op expr.CmpOp, data []byte) { out = append(out, &expr.Cmp{Op: op, Register: 1, Data: data}) }
	meta := func(k expr.MetaKey) { out = append(out, &expr.Meta{Key: k, Register: 1}) }
	if fam := r.family(); fam != 0 {
		meta(expr.MetaKeyNFPROTO)
		cmp(expr.CmpOpEq, []byte{map[int]byte{4: unix.NFPROTO_IPV4, 6: unix.NFPROTO_IPV6}[fam]})
	}
	if r.OifLo {
		meta(expr.MetaKeyOIFNAME)
		cmp(expr.CmpOpEq, ifname("lo"))
	}
	if r.Src.IsValid() {
		out = append(out, addrMatch(r.Src, false, false)...)
	}
	if r.Dst.IsValid() {
		out = append(out, addrMatch(r.Dst, true, r.DstNot)...)
	}
	if r.TCP || r.DPort != 0 {
		meta(expr.MetaKeyL4PROTO)
		cmp(expr.CmpOpEq, []byte{unix.IPPROTO_TCP})
	}
	if r.DPort != 0 {
		out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		cmp(expr.CmpOpEq, binaryutil.BigEndian.PutUint16(r.DPort))
	}
	if o := r.Owner; o != nil {
		meta(map[bool]expr.MetaKey{false: expr.MetaKeySKUID, true: expr.MetaKeySKGID}[o.GID])
		cmp(map[bool]expr.CmpOp{false: expr.CmpOpEq, true: expr.CmpOpNeq}[o.Not], binaryutil.NativeEndian.PutUint32(o.ID))
	}
	return append(out, verdict(r.Verdict)...)
}

func verdict(v Verdict) []expr.Any {
	switch {
	case v.Redirect != 0:
		return []expr.Any{
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(v.Redirect)},
			&expr.Redir{RegisterProtoMin: 1},
		}
	case v.Jump != "":
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: v.Jump}}
	}
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
}

// addrMatch loads the source or destination address and compares it,
// masked, with p.
func addrMatch(p netip.Prefix, dst, not bool) []expr.Any {
	addr := p.Addr().AsSlice()
	off := map[bool]uint32{false: 12, true: 16}[dst] // IPv4 saddr, daddr
	if p.Addr().Is6() {
		off = map[bool]uint32{false: 8, true: 24}[dst]
	}
	n := uint32(len(addr))
	out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}}
	if p.Bits() < p.Addr().BitLen() {
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask(p.Bits(), int(n)), Xor: make([]byte, n)})
	}
	op := expr.CmpOpEq
	if not {
		op = expr.CmpOpNeq
	}
	return append(out, &expr.Cmp{Op: op, Register: 1, Data: addr})
}

func mask(bits, n int) []byte {
	m := make([]byte, n)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL padded.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}
