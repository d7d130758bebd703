package fieldguard.purposes_test

import rego.v1

import data.fieldguard.fixtures_test as fx
import data.fieldguard.purposes

codes(input_doc) := found if {
	found := {r.code | some r in purposes.purpose_problems} with input as input_doc
}

test_null_purpose_is_the_default if {
	purposes.purpose_name == data.policy.purposes.default_purpose with input as {"subject": fx.member, "purpose": null}
	purposes.purpose_name == data.policy.purposes.default_purpose with input as {"subject": fx.member}
	codes({"subject": fx.member, "purpose": null}) == set()
}

test_unknown_purpose_denied if {
	codes({"subject": fx.member, "purpose": "marketing"}) == {"purpose.unknown"}
	codes({"subject": fx.member, "purpose": 12}) == {"purpose.unknown"}
}

test_support_needs_a_support_role if {
	codes({"subject": fx.member, "purpose": "support"}) == {"purpose.role"}
	codes({"subject": fx.with_roles(["support"]), "purpose": "support"}) == set()
	codes({"subject": fx.with_roles(["staff"]), "purpose": "support"}) == set()
}

test_legal_is_for_the_dpo_only if {
	codes({"subject": fx.with_roles(["support", "staff"]), "purpose": "legal"}) == {"purpose.role"}
	codes({"subject": fx.with_roles(["dpo"]), "purpose": "legal"}) == set()
}

test_anonymous_callers_only_use_anonymous_purposes if {
	codes({"subject": fx.anonymous, "purpose": null}) == set()
	codes({"subject": fx.anonymous, "purpose": "analytics"}) == {"purpose.anonymous"}
	codes({"subject": fx.anonymous, "purpose": "support"}) == {"purpose.anonymous"}
}

test_analytics_open_to_any_signed_in_caller if {
	codes({"subject": fx.member, "purpose": "analytics"}) == set()
}

test_empty_roles_list_admits_nobody if {
	closed := json.patch(data.policy.purposes, [{"op": "add", "path": "/purposes/support/roles", "value": []}])
	codes({"subject": fx.with_roles(["support", "staff", "dpo"]), "purpose": "support"}) == {"purpose.role"} with data.policy.purposes as closed
}

test_purpose_tags_and_flags if {
	purposes.purpose_flag("requires_consent") with input as {"subject": fx.member, "purpose": "analytics"}
	not purposes.purpose_flag("honours_privacy") with input as {"subject": fx.with_roles(["support"]), "purpose": "support"}
	"contact" in purposes.purpose_mask_tags with input as {"subject": fx.with_roles(["support"]), "purpose": "support"}
}
