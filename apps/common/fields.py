"""Input fields that take JSON as typed, and state in the OpenAPI schema exactly what they enforce (SPEC §9).

DRF's own fields coerce: CharField turns 5 into "5", BooleanField takes "yes", 1 and "on", ChoiceField compares
str(value). DRF has no switch to turn that off, so these subclasses refuse every value of the wrong JSON type
with the field's message (400 invalid_request with `fields`), and keep everything else of DRF's field.

Patterns are checked with `re.fullmatch` (a RegexValidator's `search` with `$` also takes a trailing newline)
and emitted as the schema's `pattern` (drf-spectacular reads RegexValidator), so schema and server agree.
A string field without a pattern of its own gets NO_NUL_PATTERN: DRF refuses NUL characters in every
CharField (PostgreSQL cannot store them), and the schema now says so.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core.validators import ProhibitNullCharactersValidator, RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

NO_NUL_PATTERN = r"^[^\x00]*$"


class FullMatchRegexValidator(RegexValidator):
    """A RegexValidator that must match the whole value (as the ECMA-262 pattern the schema shows does)."""

    def __call__(self, value):
        if not isinstance(value, str) or not self.regex.fullmatch(value):
            raise serializers.ValidationError(self.message, code=self.code)


class StrictCharField(serializers.CharField):
    """A CharField that takes only a JSON string. `pattern` (a regular expression) must match the whole value."""

    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, *, pattern: str | None = None, pattern_message: str | None = None, **kwargs):
        super().__init__(**kwargs)
        # Replaced by the pattern validator below, which refuses NUL too and puts it in the schema.
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        if pattern is None:
            pattern, pattern_message = NO_NUL_PATTERN, "Null characters are not allowed."
        self.validators.append(FullMatchRegexValidator(pattern, message=pattern_message or "Invalid format."))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, nothing else ("true", 1 and "yes" are refused)."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid")


class StrictChoiceField(serializers.ChoiceField):
    """One of the (string) choices, given as a JSON string."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=type(data).__name__)
        return super().to_internal_value(data)


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(serializers.JSONField):
    """A JSON object (any keys and values); anything else, null included, is refused."""

    default_error_messages = {"not_an_object": "Must be a JSON object."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_an_object")
        return super().to_internal_value(data)


class OneOfSerializer(serializers.Serializer):
    """A body that is one of several shapes, chosen by a discriminator field (the schema's oneOf).

    A subclass declares the discriminator as a StrictChoiceField of the keys of `branches`, and
    `component_name`; the body is validated by the chosen branch serializer alone (fields the branch does not
    declare are ignored, as its schema allows). apps.common.schema.OneOfSerializerSchema documents it.
    """

    discriminator: str
    branches: dict[str, type[serializers.Serializer]]
    component_name: str

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            # Only the discriminator is this serializer's own field: validated alone, without a second full
            # serializer pass over the body (the message send is a hot path).
            try:
                chosen = self.fields[self.discriminator].run_validation(data.get(self.discriminator, empty))
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({self.discriminator: exc.detail}) from None
        else:
            chosen = super().to_internal_value(data)[self.discriminator]  # DRF's "invalid" (not an object)
        branch = self.branches[chosen](data=data, context=self.context)
        try:
            branch.is_valid(raise_exception=True)
            return dict(branch.validated_data)
        finally:
            release_fields(branch)

    def is_valid(self, *, raise_exception=False):
        try:
            return super().is_valid(raise_exception=raise_exception)
        finally:
            release_fields(self)


def release_fields(serializer: serializers.BaseSerializer) -> None:
    """Cut a validated serializer's cycle with its fields. DRF's `fields` (cached on the serializer) holds each
    bound field, and each field's `parent` is the serializer: used once per request, the pair is left to the
    cycle collector (~55 objects per message send; docs/PERFORMANCE.md "Request cycles"). Without `fields`
    reference counting frees them at once; a later use of `fields` builds them again. Flat serializers only (no
    branch has a nested one): a nested serializer's own fields would stay in their cycle."""
    serializer.__dict__.pop("fields", None)
