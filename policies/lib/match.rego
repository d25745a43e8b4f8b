# Istio AuthorizationPolicy value matching. Every compiled policy module
# imports data.ward.lib; patterns are pre-classified by the compiler into a
# matcher object {"exact": set, "prefix": [..], "suffix": [..], "any": bool,
# "regex": [..]} so no pattern is re-parsed per request.
package ward.lib

import rego.v1

# str_match: exact, "prefix*", "*suffix" and "*". Istio's "*" means a
# non-empty value (regex ".+"), except for headers, where it means the
# header is present (present_match), even empty. Absent attributes arrive
# as null and match nothing.
str_match(v, m) if {
	m.any
	is_string(v)
	v != ""
}

str_match(v, m) if {
	m.present
	v != null
}

str_match(v, m) if v in m.exact

str_match(v, m) if {
	is_string(v)
	some p in m.prefix
	startswith(v, p)
}

str_match(v, m) if {
	is_string(v)
	some s in m.suffix
	endswith(v, s)
}

# path_match adds {*}/{**} templates, compiled to anchored regexes.
path_match(v, m) if str_match(v, m)

path_match(v, m) if {
	is_string(v)
	some r in m.regex
	regex.match(r, v)
}

# claim_match: a claim is a string or a list of strings; a list matches
# when any element does (Istio's behaviour for list claims).
claim_match(v, m) if {
	is_string(v)
	str_match(v, m)
}

claim_match(v, m) if {
	is_array(v)
	some x in v
	is_string(x)
	str_match(x, m)
}

# ip_match: the address lies in one of the CIDRs (single IPs are compiled
# to /32 or /128).
ip_match(ip, cidrs) if {
	is_string(ip)
	some c in cidrs
	net.cidr_contains(c, ip)
}
