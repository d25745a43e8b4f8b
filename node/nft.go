package node

import (
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// captureChain is one base chain of the capture table and its rules, each
// a list of nf_tables expressions.
type captureChain struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
	rules    [][]expr.Any
}

// capturePlan is the capture, with the semantics of Istio's in-pod
// iptables rules, in one inet table:
//
//   - nat prerouting: new incoming IPv4 TCP → 15006, except HBONE (15008),
//     which the proxy terminates itself;
//   - nat output: new outgoing IPv4 TCP → 15001, except the proxy's own
//     (Mark), loopback and 127.0.0.0/8;
//   - filter input and output: IPv6 is not proxied yet, so new IPv6 TCP
//     other than loopback (and, outgoing, the proxy's own) is refused
//     with a reset: without this an IPv6 caller would reach the
//     application around STRICT mTLS;
//   - mangle prerouting and output (route type, so a changed mark
//     re-routes): the transparent-source connmark (see tproxyMark).
func capturePlan() []captureChain {
	ret := verdict(expr.VerdictReturn)
	tcp := l4proto(unix.IPPROTO_TCP)
	v4, v6 := nfproto(unix.NFPROTO_IPV4), nfproto(unix.NFPROTO_IPV6)
	reset := []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
	return []captureChain{
		{"nat_prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest, [][]expr.Any{
			join(v4, tcp, dport(PortHBONE), ret),
			join(v4, tcp, redirect(PortInbound)),
		}},
		{"nat_output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest, [][]expr.Any{
			join(v4, markIs(Mark), ret),
			join(v4, ifname(expr.MetaKeyOIFNAME, "lo"), ret),
			join(v4, daddr4(127, 8), ret),
			join(v4, tcp, redirect(PortOutbound)),
		}},
		{"filter_input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter, [][]expr.Any{
			join(v6, ifname(expr.MetaKeyIIFNAME, "lo"), ret),
			join(v6, tcp, syn(), reset),
		}},
		{"filter_output", nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityFilter, [][]expr.Any{
			join(v6, ifname(expr.MetaKeyOIFNAME, "lo"), ret),
			join(v6, markIs(Mark), ret),
			join(v6, tcp, syn(), reset),
		}},
		{"mangle_prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityMangle, [][]expr.Any{
			join(v4, markIs(Mark), setConnmark(tproxyMark, tproxyMask)),
		}},
		{"mangle_output", nftables.ChainTypeRoute, nftables.ChainHookOutput, nftables.ChainPriorityMangle, [][]expr.Any{
			join(v4, connmarkIs(tproxyMark, tproxyMask), restoreMark()),
		}},
	}
}

// applyTable replaces (install) or deletes the capture table in the
// namespace at path in one netlink batch: add (so the delete cannot
// fail), delete, then, to install, the table, chains and rules again —
// a re-run leaves exactly one table and traffic never sees half of one.
func applyTable(path string, install bool) error {
	op := map[bool]string{false: "remove", true: "install"}[install]
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s capture: %w", op, err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return fmt.Errorf("%s capture in %s: %w", op, path, err)
	}
	t := &nftables.Table{Name: CaptureTable, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	if install {
		buildTable(c, c.AddTable(t))
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s capture (nf_tables table inet %s) in %s: %w%s", op, CaptureTable, path, err, nftHint(err))
	}
	return nil
}

func buildTable(c *nftables.Conn, t *nftables.Table) {
	accept := nftables.ChainPolicyAccept
	for _, ch := range capturePlan() {
		chain := c.AddChain(&nftables.Chain{Name: ch.name, Table: t, Type: ch.typ, Hooknum: ch.hook, Priority: ch.priority, Policy: &accept})
		for _, r := range ch.rules {
			c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: r})
		}
	}
}

func nftHint(err error) string {
	switch {
	case isErrno(err, unix.EPERM), isErrno(err, unix.EACCES):
		return " (changing nf_tables needs CAP_NET_ADMIN)"
	case isErrno(err, unix.ENOENT), isErrno(err, unix.EOPNOTSUPP), isErrno(err, unix.EPROTONOSUPPORT):
		return " (is nf_tables with nat, reject and conntrack — nft_chain_nat, nft_redir, nft_reject_inet, nft_ct — available in this kernel?)"
	}
	return ""
}

// Expression builders; every one loads into and compares register 1.

func join(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func cmpEq(data []byte) expr.Any { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }

func meta(k expr.MetaKey) expr.Any { return &expr.Meta{Key: k, Register: 1} }

func nfproto(p byte) []expr.Any             { return []expr.Any{meta(expr.MetaKeyNFPROTO), cmpEq([]byte{p})} }
func l4proto(p byte) []expr.Any             { return []expr.Any{meta(expr.MetaKeyL4PROTO), cmpEq([]byte{p})} }
func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

// ifname matches the input or output interface name (IFNAMSIZ bytes, NUL
// padded, as the kernel compares it).
func ifname(k expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{meta(k), cmpEq(b)}
}

func dport(p uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		cmpEq(binaryutil.BigEndian.PutUint16(p)),
	}
}

// daddr4 matches an IPv4 destination in first.0.0.0/bits (bits ≤ 8).
func daddr4(first byte, bits int) []expr.Any {
	m := byte(0xff << (8 - bits))
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{m, 0, 0, 0}, Xor: make([]byte, 4)},
		cmpEq([]byte{first & m, 0, 0, 0}),
	}
}

// syn matches a TCP segment with SYN set and ACK, RST and FIN clear
// (iptables' --syn: a new connection's first segment).
func syn() []expr.Any {
	const fin, syn, rst, ack = 0x01, 0x02, 0x04, 0x10
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{fin | syn | rst | ack}, Xor: []byte{0}},
		cmpEq([]byte{syn}),
	}
}

func redirect(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// markIs matches the packet mark exactly (iptables' -m mark --mark).
func markIs(m uint32) []expr.Any {
	return []expr.Any{meta(expr.MetaKeyMARK), cmpEq(binaryutil.NativeEndian.PutUint32(m))}
}

// connmarkIs matches ct mark & mask == m.
func connmarkIs(m, mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)},
		cmpEq(binaryutil.NativeEndian.PutUint32(m)),
	}
}

// setConnmark is CONNMARK --set-xmark m/mask: ct mark = (ct mark & ^mask) ^ m.
func setConnmark(m, mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^mask), Xor: binaryutil.NativeEndian.PutUint32(m)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
	}
}

// restoreMark is CONNMARK --restore-mark (all bits): meta mark = ct mark.
func restoreMark() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
	}
}
