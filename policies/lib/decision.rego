# Istio's decision order over the policies that apply to one workload:
# CUSTOM → DENY → (no ALLOW policy ⇒ allow) → any ALLOW match ⇒ allow, else
# deny. AUDIT never changes the verdict. Dry-run policies are evaluated into
# a shadow verdict and never enforced. CUSTOM hits are returned to the
# caller, which consults the provider before applying this verdict.
#
# Each element of ps is a compiled policy package: {"meta": {...},
# "matches": set of rule indexes}.
package ward.lib

import rego.v1

hit(p) := h if {
	count(p.matches) > 0
	i := min(p.matches)
	h := {
		"policy": p.meta.id,
		"rule": p.meta.rules[i],
		"action": p.meta.action,
		"dry_run": p.meta.dry_run,
		"provider": p.meta.provider,
	}
}

hits(ps, action, dry) := [h |
	some p in ps
	p.meta.action == action
	p.meta.dry_run in dry
	h := hit(p)
]

count_policies(ps, action, dry) := count([p |
	some p in ps
	p.meta.action == action
	p.meta.dry_run in dry
])

decide(ps) := {
	"custom": hits(ps, "CUSTOM", {false}),
	"audit": hits(ps, "AUDIT", {false, true}),
	"dry_run": array.concat(hits(ps, "DENY", {true}), hits(ps, "ALLOW", {true})),
	"verdict": decide_verdict(ps, {false}),
	"shadow": decide_verdict(ps, {false, true}),
}

decide_verdict(ps, dry) := v if {
	deny := hits(ps, "DENY", dry)
	count(deny) > 0
	v := {"allowed": false, "reason": "deny", "by": deny[0]}
} else := v if {
	count_policies(ps, "ALLOW", dry) == 0
	v := {"allowed": true, "reason": "no_allow_policy", "candidates": 0}
} else := v if {
	allow := hits(ps, "ALLOW", dry)
	count(allow) > 0
	v := {"allowed": true, "reason": "allow", "by": allow[0]}
} else := {"allowed": false, "reason": "no_allow_match", "candidates": count_policies(ps, "ALLOW", dry)}
