"""The API's one renderer: DRF's JSON renderer that cannot fail on odd input.

JSON allows a lone surrogate escape (`"\\ud800"`); Python parses it into a str
that UTF-8 cannot encode. Error details echo client input (unknown field names,
for instance), so rendering such a str must not turn a 400 into a 500: when the
UTF-8 output fails, the same data is rendered with ASCII escapes, still valid JSON.
"""

import json

from rest_framework.renderers import JSONRenderer


class SafeJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return json.dumps(data, cls=self.encoder_class, ensure_ascii=True, allow_nan=not self.strict,
                              separators=(",", ":")).encode("ascii")
