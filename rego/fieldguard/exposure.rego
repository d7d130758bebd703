# The objects decision: per object, is it visible to this caller, and for each
# requested coordinate of its type, what is released. This is where the data
# subject's own choices are honoured:
#
#   - relation `self`: a person sees all of their own data (privacy settings,
#     consent and masking are about other people reading it);
#   - consent: a purpose with requires_consent releases personal data only of
#     subjects whose attrs.consent lists that purpose;
#   - privacy settings: attrs.privacy[<key>] is everyone | authenticated |
#     nobody (missing keys take classification privacy_defaults);
#   - visibility: attrs.visibility picks the audiences in classification
#     `visibility` (private: self and staff; suspended: staff only).
#
# Per-coordinate rules that do not depend on the object (purpose, role, tags,
# client contract) are the plan's (fieldguard.fields) and are re-applied here,
# so the objects decision never releases what the plan would deny.
package fieldguard.exposure

import rego.v1

import data.fieldguard.fields
import data.fieldguard.purposes
import data.fieldguard.util

cls := data.policy.classification

objects := util.array_or_empty(object.get(input, "objects", []))

requested := {c | some c in util.array_or_empty(object.get(input, "coordinates", [])); is_string(c)}

# ---------------------------------------------------------------- the object

object_type(o) := o.type if {
	is_object(o)
	is_string(o.type)
} else := ""

attrs(o) := o.attrs if {
	is_object(o)
	is_object(o.attrs)
} else := {}

# `self` only for a signed-in caller: the integration derives the relation by
# comparing the owner attribute with subject.id.
is_self(o) if {
	util.authenticated
	is_object(o)
	o.relation == "self"
}

visibility(o) := v if {
	v := attrs(o).visibility
	v != null
} else := cls.default_visibility

audience_matches(_, "everyone") := true

audience_matches(_, "authenticated") if util.authenticated

audience_matches(o, "self") if is_self(o)

audience_matches(_, "staff") if util.is_staff

# A malformed object (not an object, no type name) is never visible.
visible(o) if {
	object_type(o) != ""
	some audience in util.array_or_empty(object.get(cls.visibility, [visibility(o)], []))
	audience_matches(o, audience)
}

# ---------------------------------------------------------------- per coordinate, once per batch

# What does not depend on the object is computed once per coordinate (rules
# are evaluated once per query; function calls are not memoised by regorus).
plan_effect := {c: fields.effect(c) | some c in requested}

personal := {c | some c in requested; fields.personal(c)}

privacy_key := {c: k | some c in requested; k := fields.privacy_key(c)}

mask_reason := {c: r | some c in requested; r := fields.mask_reason(c)}

masker := {c: fields.masker(c) | some c in requested}

requires_consent if purposes.purpose_flag("requires_consent")

honours_privacy if purposes.purpose_flag("honours_privacy")

# ---------------------------------------------------------------- privacy and consent

privacy_settings(o) := p if {
	p := attrs(o).privacy
	is_object(p)
} else := {}

# The subject's setting for the coordinate: their own choice, else the
# shipped default for that key, else `nobody`. Coordinates without a key fall
# back to classification default_privacy.
privacy_setting(o, c) := s if {
	s := privacy_settings(o)[privacy_key[c]]
	is_string(s)
} else := s if {
	s := cls.privacy_defaults[privacy_key[c]]
} else := "nobody" if {
	privacy_key[c]
} else := cls.default_privacy

setting_allows("everyone") := true

setting_allows("authenticated") if util.authenticated

consented(o) if purposes.purpose_name in util.array_or_empty(object.get(attrs(o), "consent", []))

# ---------------------------------------------------------------- per object and coordinate

# The effect for a coordinate the plan marked `check`.
subject_effect(o, c) := {"effect": "allow", "reason": "the caller's own data"} if {
	is_self(o)
} else := {"effect": "deny", "reason": sprintf("the data subject has not consented to purpose %s", [purposes.purpose_name])} if {
	requires_consent
	c in personal
	not consented(o)
} else := {"effect": "deny", "reason": sprintf("the data subject's privacy setting (%s) withholds it", [setting])} if {
	honours_privacy
	setting := privacy_setting(o, c)
	not setting_allows(setting)
} else := {"effect": "mask", "mask": masker[c], "reason": mask_reason[c]} if {
	mask_reason[c]
} else := {"effect": "allow", "reason": "the data subject's settings allow it"}

# Invisible objects release nothing; `check` is decided per subject; any
# other plan effect holds for every object.
field_effect(o, visible, c) := {"effect": "deny", "reason": "the object is not visible to this caller"} if {
	visible == false
} else := subject_effect(o, c) if {
	plan_effect[c].effect == "check"
} else := plan_effect[c]

coordinates_of(o) := {c | some c in requested; util.coordinate_type(c) == object_type(o)}

decide(o) := {
	"visible": visible,
	"fields": {c: field_effect(o, visible, c) | some c in coordinates_of(o)},
} if {
	visible := visible_bool(o)
}

visible_bool(o) := true if visible(o)

visible_bool(o) := false if not visible(o)

# Same length and order as input.objects (visible_bool is defined for every
# value, so decide is too).
result := {"objects": [decide(o) | some o in objects]}
