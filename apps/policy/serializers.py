"""The admin API's policy object (GET/PATCH .../policy, and `policy` in the app object), derived from
apps.policy.fields: the schema states each field's type, range, choices and meaning from that one description,
and policy_update checks values against the same one (apps.policy.evaluation.policy_value_errors)."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from apps.common.fields import StrictCharField

from .fields import BY_NAME, POLICY_FIELDS, RECEIPT_POLICY_FIELDS, PolicyField
from .services import REASON_MAX_LENGTH


def api_field(field: PolicyField, **kwargs) -> serializers.Field:
    """The DRF field that documents `field` (its type, range or choices, and its help as the description)."""
    kwargs.setdefault("help_text", field.help)
    if field.type is bool:
        return serializers.BooleanField(**kwargs)
    if field.type is int:
        return serializers.IntegerField(min_value=field.minimum, max_value=field.maximum, **kwargs)
    return serializers.ChoiceField(choices=list(field.values), **kwargs)


class EffectiveSerializer(serializers.Serializer):
    group_read_ack = serializers.BooleanField()


# The ReceiptPolicy row's fields: the app object's `policy`. Built with type() so that each field of the
# description becomes a declared field (DRF's serializer metaclass collects them from the class namespace).
PolicyBodySerializer = type(
    "PolicyBodySerializer",
    (serializers.Serializer,),
    {"__module__": __name__, **{field.name: api_field(field) for field in RECEIPT_POLICY_FIELDS}},
)


class PolicyOutputSerializer(PolicyBodySerializer):
    """The policy fields of an app plus its plan and the effective state."""

    plan = api_field(BY_NAME["plan"])
    effective = EffectiveSerializer()


PolicyPatchSerializer = inline_serializer(
    "PolicyPatch",
    {
        **{field.name: api_field(field, required=False) for field in POLICY_FIELDS},
        "reason": StrictCharField(
            required=False,
            allow_blank=True,
            trim_whitespace=False,
            max_length=REASON_MAX_LENGTH,
            help_text="Why (a string, never null). Required, with at least one visible character (a letter, "
            "digit, punctuation mark or symbol; spaces and zero-width characters do not count), when "
            "raising group_ack_member_limit: else 400 reason_required.",
        ),
    },
)
# The body is validated by policy_update (apps/policy/services.py), which refuses any field not listed here;
# the schema says so with additionalProperties: false
# (apps.common.schema.forbid_unknown_fields_where_refused).
