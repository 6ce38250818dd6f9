"""The API's one parser: DRF's JSON parser that cannot fail on odd input.

Python's JSON decoder recurses once per nesting level: a body like `[[[[...` a
few thousand levels deep raises RecursionError, which DRF does not catch (it
only turns ValueError into a 400). Any such body is malformed for this API, so
it is refused like every other unparsable body: 400 `invalid_request`.
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
