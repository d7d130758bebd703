# Checks on the policy data compliance edits (policies/*.yaml): a typo in a
# tag, a quota name or a CIDR must fail the test run, not weaken the policy
# silently (an unknown quota would simply never be charged; a bad CIDR makes
# regorus raise on every request).
package fieldguard.data_test

import rego.v1

cls := data.policy.classification

pur := data.policy.purposes

lim := data.policy.limits

known_tags := {t | some p in pur.purposes; some t in p.tags} | {t | some t in pur.never_release_tags}

known_measures := {"requests", "records", "subjects", "sensitive", "cost"}

test_quota_catalogue_shape if {
	every _, q in lim.quotas {
		q.measure in known_measures
		is_number(q.window_seconds)
		q.window_seconds > 0
		is_number(q.retry_after)
		q.retry_after > 0
		q.retry_after <= q.window_seconds
	}
	lim.quotas.records_day == {"measure": "records", "window_seconds": 86400, "retry_after": 3600}
	lim.quotas.cost_hour.measure == "cost"
	lim.quotas.cost_hour.window_seconds == 3600
}

test_scopes_as_contracted if {
	lim.scopes == ["subject", "app", "ip", "prefix"]
}

test_every_limit_names_a_catalogued_quota if {
	every _, tier in lim.tiers {
		every q, n in tier.quotas {
			lim.quotas[q]
			n > 0
		}
	}
	every _, quotas in lim.network_quotas {
		every q, _ in quotas {
			lim.quotas[q]
		}
	}
	every _, c in data.policy.clients.apps {
		every q, _ in c.quotas {
			lim.quotas[q]
		}
	}
}

test_every_tier_limits_records_and_cost if {
	every _, tier in lim.tiers {
		tier.quotas.records_day > 0
		tier.quotas.cost_hour > 0
	}
	lim.tiers.anonymous
	lim.tiers.new
	lim.tiers.standard
	lim.tiers.verified
}

test_caps_positive if {
	every _, n in lim.caps {
		is_number(n)
		n > 0
	}
	every _, tier in lim.tiers {
		every cap, n in tier.caps {
			lim.caps[cap]
			n > 0
		}
	}
}

test_ip_limits_do_not_undercut_verified_accounts if {
	every q, n in lim.tiers.verified.quotas {
		lim.network_quotas.ip[q] >= n
	}
	every q, n in lim.network_quotas.ip {
		lim.network_quotas.prefix[q] >= n
	}
}

test_deny_list_cidrs_valid if {
	every entry in data.policy.network.deny {
		net.cidr_is_valid(entry.cidr)
		is_string(entry.reason)
	}
}

test_classified_tags_are_known if {
	every c, entry in cls.coordinates {
		count(split(c, ".")) == 2
		every t in entry.tags {
			t in known_tags
		}
	}
	every t in cls.default_tags {
		t in known_tags
	}
}

test_privacy_keys_have_defaults if {
	keys := {k | some entry in cls.coordinates; k := entry.privacy}
	count(keys) > 0
	every key in keys {
		cls.privacy_defaults[key]
	}
	every _, v in cls.privacy_defaults {
		v in {"everyone", "authenticated", "nobody"}
	}
}

test_contact_data_private_by_default if {
	cls.privacy_defaults.email == "nobody"
	cls.privacy_defaults.phone == "nobody"
}

test_visibility_audiences_known if {
	every _, audiences in cls.visibility {
		every a in audiences {
			a in {"everyone", "authenticated", "self", "staff"}
		}
	}
	cls.visibility[cls.default_visibility]
}

test_purposes_consistent if {
	pur.purposes[pur.default_purpose]
	every _, p in pur.purposes {
		every t in p.mask {
			t in p.tags
		}
	}
	every t, _ in pur.role_gated_tags {
		t in known_tags
	}
}

test_client_contracts_name_known_purposes if {
	every _, c in data.policy.clients.apps {
		every p in c.purposes {
			pur.purposes[p]
		}
	}
}
