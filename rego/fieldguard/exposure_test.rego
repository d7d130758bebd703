package fieldguard.exposure_test

import rego.v1

import data.fieldguard.exposure
import data.fieldguard.fixtures_test as fx

contact := ["User.email", "User.phone"]

profile := ["User.handle", "User.email", "User.phone", "User.birthday", "User.location", "User.followerCount"]

# The objects result for one object.
decide(subject, purpose, coordinates, obj) := d if {
	r := exposure.result with input as fx.objects_input(subject, purpose, coordinates, [obj])
	d := r.objects[0]
}

effects(d) := {c: e.effect | some c, e in d.fields}

stranger(attrs) := fx.user("other", attrs)

with_privacy(settings) := object.union(fx.public_attrs, {"privacy": settings})

# ---------------------------------------------------------------- self

test_self_sees_all_own_personal_data if {
	own := fx.user("self", with_privacy({"email": "nobody", "phone": "nobody", "location": "nobody"}))
	d := decide(fx.member, null, profile, own)
	d.visible
	effects(d) == {c: "allow" | some c in profile}
	d.fields["User.email"].reason == "the caller's own data"
}

test_self_needs_sign_in if {
	# A relation of "self" claimed for an anonymous caller is ignored.
	d := decide(fx.anonymous, null, ["User.followerCount"], fx.user("self", with_privacy({"followers": "authenticated"})))
	d.fields["User.followerCount"].effect == "deny"
}

# ---------------------------------------------------------------- privacy settings

test_privacy_nobody_withholds if {
	d := decide(fx.member, null, contact, stranger(with_privacy({"email": "nobody", "phone": "nobody"})))
	effects(d) == {"User.email": "deny", "User.phone": "deny"}
	d.fields["User.email"].reason == "the data subject's privacy setting (nobody) withholds it"
}

test_privacy_everyone_releases if {
	d := decide(fx.member, null, contact, stranger(with_privacy({"email": "everyone", "phone": "nobody"})))
	effects(d) == {"User.email": "allow", "User.phone": "deny"}
}

test_privacy_authenticated_needs_sign_in if {
	obj := stranger(with_privacy({"followers": "authenticated"}))
	decide(fx.member, null, ["User.followerCount"], obj).fields["User.followerCount"].effect == "allow"
	decide(fx.anonymous, null, ["User.followerCount"], obj).fields["User.followerCount"].effect == "deny"
}

test_privacy_defaults_apply_when_unset if {
	# Shipped defaults: contact data nobody, birthday/location authenticated.
	d := decide(fx.member, null, profile, stranger(fx.public_attrs))
	effects(d) == {
		"User.handle": "allow",
		"User.email": "deny",
		"User.phone": "deny",
		"User.birthday": "allow",
		"User.location": "allow",
		"User.followerCount": "allow",
	}
}

test_unknown_privacy_value_withholds if {
	d := decide(fx.member, null, ["User.email"], stranger(with_privacy({"email": "friends-of-friends"})))
	d.fields["User.email"].effect == "deny"
}

test_privacy_key_without_default_withholds if {
	cls := json.remove(data.policy.classification, ["privacy_defaults/birthday"])
	d := decide(fx.member, null, ["User.birthday"], stranger(fx.public_attrs)) with data.policy.classification as cls
	d.fields["User.birthday"].effect == "deny"
}

# ---------------------------------------------------------------- consent

test_analytics_without_consent_withholds_personal_data if {
	d := decide(fx.member, "analytics", ["User.handle", "User.birthday", "User.location"], stranger(with_privacy({"location": "everyone"})))
	effects(d) == {"User.handle": "allow", "User.birthday": "deny", "User.location": "deny"}
	d.fields["User.birthday"].reason == "the data subject has not consented to purpose analytics"
}

test_analytics_with_consent_releases_and_masks if {
	attrs := object.union(with_privacy({"location": "everyone"}), {"consent": ["analytics"]})
	d := decide(fx.member, "analytics", ["User.birthday", "User.location"], stranger(attrs))
	d.fields["User.birthday"].effect == "allow"
	d.fields["User.location"] == {"effect": "mask", "mask": "truncate", "reason": "purpose analytics releases location data masked"}
}

test_consent_does_not_override_privacy if {
	attrs := object.union(with_privacy({"location": "nobody"}), {"consent": ["analytics"]})
	d := decide(fx.member, "analytics", ["User.location"], stranger(attrs))
	d.fields["User.location"].effect == "deny"
}

test_consent_for_another_purpose_does_not_count if {
	attrs := object.union(fx.public_attrs, {"consent": ["marketing"]})
	d := decide(fx.member, "analytics", ["User.birthday"], stranger(attrs))
	d.fields["User.birthday"].effect == "deny"
}

# ---------------------------------------------------------------- purposes that do not defer to the subject

test_support_masks_contact_regardless_of_settings if {
	d := decide(fx.with_roles(["support"]), "support", contact, stranger(with_privacy({"email": "nobody"})))
	d.fields["User.email"] == {"effect": "mask", "mask": "email", "reason": "purpose support releases contact data masked"}
	d.fields["User.phone"].mask == "phone_last4"
}

test_plan_denials_hold_per_object if {
	d := decide(fx.anonymous, null, ["User.email", "User.passwordHash"], stranger(with_privacy({"email": "everyone"})))
	effects(d) == {"User.email": "deny", "User.passwordHash": "deny"}
}

# ---------------------------------------------------------------- visibility

test_private_profile_hidden_from_others if {
	attrs := object.union(fx.public_attrs, {"visibility": "private"})
	d := decide(fx.member, null, ["User.handle"], stranger(attrs))
	d.visible == false
	d.fields["User.handle"] == {"effect": "deny", "reason": "the object is not visible to this caller"}
}

test_private_profile_visible_to_self_and_staff if {
	attrs := object.union(fx.public_attrs, {"visibility": "private"})
	decide(fx.member, null, ["User.handle"], fx.user("self", attrs)).visible == true
	decide(fx.with_roles(["moderator"]), "moderation", ["User.handle"], stranger(attrs)).visible == true
}

test_suspended_profile_only_for_staff if {
	attrs := object.union(fx.public_attrs, {"visibility": "suspended"})
	decide(fx.member, null, ["User.handle"], fx.user("self", attrs)).visible == false
	decide(fx.member, null, ["User.handle"], stranger(attrs)).visible == false
	decide(fx.with_roles(["staff"]), null, ["User.handle"], stranger(attrs)).visible == true
}

test_members_only_profile if {
	attrs := object.union(fx.public_attrs, {"visibility": "members"})
	decide(fx.member, null, ["User.handle"], stranger(attrs)).visible == true
	decide(fx.anonymous, null, ["User.handle"], stranger(attrs)).visible == false
}

test_unknown_visibility_hides if {
	attrs := object.union(fx.public_attrs, {"visibility": "unlisted"})
	decide(fx.member, null, ["User.handle"], stranger(attrs)).visible == false
}

test_missing_attributes_use_defaults if {
	d := decide(fx.member, null, ["User.handle", "User.email"], {"type": "User", "relation": "other"})
	d.visible == true
	effects(d) == {"User.handle": "allow", "User.email": "deny"}
}

# ---------------------------------------------------------------- shape

test_one_result_per_object_in_order if {
	objs := [
		stranger(with_privacy({"email": "everyone"})),
		stranger(with_privacy({"email": "nobody"})),
		fx.user("self", with_privacy({"email": "nobody"})),
	]
	r := exposure.result with input as fx.objects_input(fx.member, null, ["User.email"], objs)
	[o.fields["User.email"].effect | some o in r.objects] == ["allow", "deny", "allow"]
}

test_only_coordinates_of_the_object_type if {
	post := {"type": "Post", "relation": "other", "attrs": fx.public_attrs}
	d := decide(fx.member, null, ["User.email", "Post.body", "Post.location"], post)
	{c | some c, _ in d.fields} == {"Post.body", "Post.location"}
}

test_malformed_objects_are_invisible if {
	r := exposure.result with input as fx.objects_input(fx.member, null, ["User.email"], ["junk", {"type": 3}])
	[o.visible | some o in r.objects] == [false, false]
	[o.fields | some o in r.objects] == [{}, {}]
}
