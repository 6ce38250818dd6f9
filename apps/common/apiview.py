"""The base of every API view: DRF's APIView, whose request, view and response are freed when the response closes.

DRF and Django link them in cycles: the view holds its Request (and, for a GET, `head`, its own bound `get`); the
Request's parser_context holds the view and the Request itself; a Response's renderer_context holds the view, the
Request and, once rendered, the Response. So every API request left its whole graph (~70 objects for a GET
/events) to the cycle collector: at hundreds of requests a second per worker, a young collection every second or
so, each holding the GIL, the event loop's included, for tens of milliseconds (docs/PERFORMANCE.md, "Request
cycles"). Once the response is closed (the server sent its body), those links are cut and reference counting
frees the graph at once.
"""

import functools

from rest_framework.request import Request
from rest_framework.views import APIView


class CycleFreeAPIView(APIView):
    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        # Django runs a response's resource closers in close(), after the server sent the body, then drops them.
        response._resource_closers.append(functools.partial(self._unlink, response))
        return response

    def _unlink(self, response) -> None:
        request = self.__dict__.pop("request", None)
        if isinstance(request, Request):
            request.parser_context = None
        self.__dict__.pop("head", None)  # View.setup's `self.head = self.get`: a bound method of the view, on the view
        response.renderer_context = None  # Response.rendered_content puts the response itself in it
