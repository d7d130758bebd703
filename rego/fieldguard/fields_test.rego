package fieldguard.fields_test

import rego.v1

import data.fieldguard.fields
import data.fieldguard.fixtures_test as fx

# The plan's effect for one coordinate, for a subject and purpose.
effect_of(coordinate, subject, purpose) := e if {
	e := fields.effect(coordinate) with input as fx.plan_with({"subject": subject, "purpose": purpose})
}

# ---------------------------------------------------------------- tags

test_data_tags_replace_code_tags if {
	# The code says public; compliance says pii+contact: compliance wins.
	t := fields.tags("User.email") with input as {"fields": [fx.field("User.email", ["public"])]}
	t == {"pii", "contact"}
}

test_code_tags_used_for_unclassified_coordinates if {
	t := fields.tags("Order.address") with input as {"fields": [
		fx.field("Order.address", ["pii"]),
		fx.field("Order.address", ["location"]),
	]}
	t == {"pii", "location"}
}

test_default_tags_for_unknown_coordinates if {
	t := fields.tags("Widget.colour") with input as {"fields": [fx.field("Widget.colour", [])]}
	t == {x | some x in data.policy.classification.default_tags}
}

# ---------------------------------------------------------------- anonymous

test_anonymous_sees_public_only if {
	effect_of("User.handle", fx.anonymous, null).effect == "allow"
	e := effect_of("User.email", fx.anonymous, null)
	e.effect == "deny"
	e.reason == "anonymous callers see public data only"
	effect_of("User.birthday", fx.anonymous, null).effect == "deny"
}

test_anonymous_public_field_with_privacy_key_is_checked if {
	# A follower count is public data, but its owner can hide it.
	effect_of("User.followerCount", fx.anonymous, null).effect == "check"
}

# ---------------------------------------------------------------- default purpose

test_member_personal_fields_depend_on_the_subject if {
	e := effect_of("User.email", fx.member, null)
	e.effect == "check"
	e.mask == "email"
	e.reason == "the data subject's privacy settings apply"
	effect_of("User.location", fx.member, null).mask == "truncate"
}

test_member_public_fields_allowed if {
	e := effect_of("User.displayName", fx.member, null)
	e == {"effect": "allow", "reason": "purpose default allows public data"}
}

test_personal_code_tag_without_privacy_key_is_checked if {
	e := fields.effect("Order.address") with input as fx.plan_with({"fields": [fx.field("Order.address", ["pii"])]})
	e.effect == "check"
	e.mask == data.policy.classification.default_mask
}

test_internal_data_denied_under_default_purpose_even_for_staff if {
	e := effect_of("User.moderationNotes", fx.with_roles(["staff"]), null)
	e.effect == "deny"
	e.reason == "purpose default does not cover internal data"
}

test_secret_never_released if {
	effect_of("User.passwordHash", fx.member, null).effect == "deny"
	e := effect_of("User.apiToken", fx.with_roles(["dpo"]), "legal")
	e.effect == "deny"
	e.reason == "tagged secret: never released through the API"
}

# ---------------------------------------------------------------- support, moderation, legal

test_support_sees_contact_data_masked if {
	e := effect_of("User.email", fx.with_roles(["support"]), "support")
	e.effect == "mask"
	e.mask == "email"
	effect_of("User.phone", fx.with_roles(["support"]), "support").mask == "phone_last4"
}

test_support_reads_internal_but_not_sensitive if {
	effect_of("User.moderationNotes", fx.with_roles(["support"]), "support").effect == "allow"
	effect_of("User.lastLoginIp", fx.with_roles(["support"]), "support").effect == "allow"
	effect_of("User.idDocument", fx.with_roles(["support"]), "support").effect == "deny"
}

test_moderation_masks_contact_and_location if {
	effect_of("User.email", fx.with_roles(["moderator"]), "moderation").effect == "mask"
	effect_of("User.location", fx.with_roles(["moderator"]), "moderation").effect == "mask"
	effect_of("User.birthday", fx.with_roles(["moderator"]), "moderation").effect == "allow"
}

test_legal_dpo_reads_sensitive_unmasked if {
	effect_of("User.idDocument", fx.with_roles(["dpo"]), "legal").effect == "allow"
	effect_of("User.email", fx.with_roles(["dpo"]), "legal").effect == "allow"
}

test_gated_tag_needs_role_even_when_purpose_covers_it if {
	# A purpose open to every member that lists `internal` still does not
	# release internal data to members without a staff role.
	open := json.patch(data.policy.purposes, [{"op": "add", "path": "/purposes/research", "value": {"tags": ["public", "internal"], "mask": []}}])
	e := effect_of("User.moderationNotes", fx.member, "research") with data.policy.purposes as open
	e.effect == "deny"
	e.reason == "internal data needs a role this caller does not have"
}

test_misused_purpose_denies_every_field if {
	e := effect_of("User.handle", fx.member, "support")
	e.effect == "deny"
	e.reason == "the stated purpose is not permitted for this caller"
	effect_of("User.handle", fx.member, "no-such-purpose").effect == "deny"
}

# ---------------------------------------------------------------- analytics (consent)

test_analytics_personal_data_needs_consent if {
	e := effect_of("User.birthday", fx.member, "analytics")
	e.effect == "check"
	e.reason == "purpose analytics needs the data subject's consent"
	effect_of("User.location", fx.member, "analytics").effect == "check"
}

test_analytics_never_reads_contact_data if {
	e := effect_of("User.email", fx.member, "analytics")
	e.effect == "deny"
	e.reason == "purpose analytics does not cover contact data"
}

test_analytics_public_data_allowed if {
	effect_of("Post.body", fx.member, "analytics").effect == "allow"
}

# ---------------------------------------------------------------- client contracts

test_client_contract_limits_coordinates if {
	inp := fx.plan_with({"client": object.union(fx.client, {"app": "partner-x"}), "fields": [fx.field("User.email", [])]})
	fields.effect("User.email").effect == "check" with input as inp
	e := fields.effect("User.phone") with input as inp
	e.effect == "deny"
	e.reason == "client app partner-x is not contracted to read User.phone"
}

test_decisions_cover_every_requested_coordinate if {
	d := fields.decisions with input as fx.plan_input
	{c | some c, _ in d} == {f.coordinate | some f in fx.profile_fields}
}
