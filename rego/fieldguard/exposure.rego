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

# Other fieldguard packages are referred to by their full path
# (data.fieldguard.util.x), not through `import data.fieldguard.util`:
# regorus resolves an imported alias by evaluating the whole package it
# names, every rule in it, even to read one rule.

cls := data.policy.classification

objects := data.fieldguard.util.array_or_empty(object.get(input, "objects", []))

requested := {c | some c in data.fieldguard.util.array_or_empty(object.get(input, "coordinates", [])); is_string(c)}

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
	data.fieldguard.util.authenticated
	is_object(o)
	o.relation == "self"
}

# (Takes the object's attrs: each object's facts are read once, in decide.)
visibility(a) := v if {
	v := a.visibility
	v != null
} else := cls.default_visibility

# The audiences this caller belongs to whatever the object, and the
# visibility values they open. Computed once per batch: the visibility rule
# runs for every object.
caller_audiences contains "everyone"

caller_audiences contains "authenticated" if data.fieldguard.util.authenticated

caller_audiences contains "staff" if data.fieldguard.util.is_staff

open_to_caller := {v |
	some v, audiences in cls.visibility
	some audience in data.fieldguard.util.array_or_empty(audiences)
	audience in caller_audiences
}

open_to_self := {v |
	some v, audiences in cls.visibility
	"self" in data.fieldguard.util.array_or_empty(audiences)
}

# Is an object of type t with attrs a visible to this caller (self: it is the
# caller's own)? A malformed object (not an object, no type name) is never
# visible.
is_visible(t, a, self) := true if {
	t != ""
	visibility(a) in open_to_caller
} else := true if {
	t != ""
	self
	visibility(a) in open_to_self
} else := false

# ---------------------------------------------------------------- per coordinate, once per batch

# Everything that does not depend on the object is computed once per batch,
# in rules: rules are evaluated once per query, while function calls are
# recomputed on every call (regorus does not memoise them), and a batch asks
# about every coordinate once per object.
plan_effect := {c: data.fieldguard.fields.effect(c) | some c in requested}

# The coordinates whose answer depends on the data subject.
checked := {c | some c, e in plan_effect; e.effect == "check"}

checked_tags := {c: data.fieldguard.fields.tags(c) | some c in checked}

personal := {c | some c, ts in checked_tags; data.fieldguard.fields.personal_tags(ts)}

privacy_key := {c: k | some c in checked; k := data.fieldguard.fields.privacy_key(c)}

mask_reason := {c: r | some c, ts in checked_tags; r := data.fieldguard.fields.masked_reason(ts)}

masker := {c: data.fieldguard.fields.masker(c) | some c in checked}

requires_consent if data.fieldguard.purposes.purpose_flag("requires_consent")

honours_privacy if data.fieldguard.purposes.purpose_flag("honours_privacy")

# Requested coordinates per object type ("User" -> {"User.email", ...}), and
# for each type the answers that hold for every visible object of that type
# (whatever the plan said, except `check`).
coordinate_type := {c: t | some c in requested; t := data.fieldguard.util.coordinate_type(c)}

requested_by_type := {t: cs |
	some _, t in coordinate_type
	cs := {c | some c, t2 in coordinate_type; t2 == t}
}

fixed_by_type := {t: fixed |
	some t, cs in requested_by_type
	fixed := {c: plan_effect[c] | some c in cs; not c in checked}
}

checked_by_type := {t: mine |
	some t, cs in requested_by_type
	mine := cs & checked
}

# ---------------------------------------------------------------- privacy and consent

privacy_settings(a) := p if {
	p := a.privacy
	is_object(p)
} else := {}

# The setting a subject who never touched it has: the shipped default for the
# coordinate's key, else `nobody`; coordinates without a key take
# classification default_privacy.
default_setting := {c: s | some c in checked; s := fallback_setting(c)}

fallback_setting(c) := s if {
	s := cls.privacy_defaults[privacy_key[c]]
} else := "nobody" if {
	privacy_key[c]
} else := cls.default_privacy

# The subject's setting for the coordinate: their own choice (a string), else
# the default above.
privacy_setting(settings, c) := s if {
	s := settings[privacy_key[c]]
	is_string(s)
} else := s if {
	s := default_setting[c]
}

# Settings that release to this caller.
releasing_settings contains "everyone"

releasing_settings contains "authenticated" if data.fieldguard.util.authenticated

consented(a) := true if {
	data.fieldguard.purposes.purpose_name in data.fieldguard.util.array_or_empty(object.get(a, "consent", []))
} else := false

# ---------------------------------------------------------------- answers

not_visible := {"effect": "deny", "reason": "the object is not visible to this caller"}

own_data := {"effect": "allow", "reason": "the caller's own data"}

no_consent := {"effect": "deny", "reason": sprintf("the data subject has not consented to purpose %s", [data.fieldguard.purposes.purpose_name])}

# What a checked coordinate gets once consent and privacy settings let it
# through: masked when the purpose masks it, else released.
released := {c: e | some c in checked; e := released_effect(c)}

released_effect(c) := {"effect": "mask", "mask": masker[c], "reason": mask_reason[c]} if {
	mask_reason[c]
} else := {"effect": "allow", "reason": "the data subject's settings allow it"}

# ---------------------------------------------------------------- per object and coordinate

# A checked coordinate of someone else's object: consent first (personal
# data under a consent purpose), then their privacy setting, then the mask.
subject_effect(subject, c) := no_consent if {
	requires_consent
	not subject.consented
	c in personal
} else := {"effect": "deny", "reason": sprintf("the data subject's privacy setting (%s) withholds it", [setting])} if {
	honours_privacy
	setting := privacy_setting(subject.privacy, c)
	not setting in releasing_settings
} else := e if {
	e := released[c]
}

# Invisible objects release nothing; a person sees all of their own data;
# otherwise checked coordinates are decided per subject and every other plan
# effect holds for every object.
object_fields(t, a, visible, self) := {c: not_visible | some c in object.get(requested_by_type, t, set())} if {
	visible == false
} else := {} if {
	not fixed_by_type[t]
} else := object.union(fixed_by_type[t], {c: own_data | some c in checked_by_type[t]}) if {
	self == true
} else := object.union(fixed_by_type[t], {c: e |
	some c in checked_by_type[t]
	e := subject_effect(subject, c)
}) if {
	subject := {"consented": consented(a), "privacy": privacy_settings(a)}
}

# One object: its facts are read once and handed down (regorus does not
# memoise function calls, and this runs for every object of the batch).
decide(o) := {"visible": visible, "fields": object_fields(t, a, visible, self)} if {
	t := object_type(o)
	a := attrs(o)
	self := is_self_bool(o)
	visible := is_visible(t, a, self)
}

is_self_bool(o) := true if is_self(o) else := false

# Same length and order as input.objects (object_type, attrs, is_self_bool
# and is_visible are defined for every value, so decide is too).
result := {"objects": [decide(o) | some o in objects]}
