"""Post/redirect/get in the console's HTTP tests (apps.console.prg): a refused form redirects (303) to its page."""


def refused(client, url: str, data: dict, *, to: str):
    """POST a form the console refuses: 303 to `to`, whose GET (200) shows the refusal once. Returns that page."""
    response = client.post(url, data)
    assert (response.status_code, response.get("Location")) == (303, to), response.status_code
    page = client.get(to)
    assert page.status_code == 200
    return page


LOGIN = "/console/login/"


def sign_in(client, data: dict, **extra):
    """POST the console sign-in as a browser would. Signed in: the 302 to the page asked for, as is. Refused: the
    303 to the sign-in page is checked and followed, and that GET is returned: it carries the refusal's status
    (400, 401, 403, 429 with Retry-After) and page, once. Anything else (a 503): the POST's own answer."""
    response = client.post(LOGIN, data, **extra)
    if response.status_code != 303:
        return response
    location = response["Location"]
    assert location == LOGIN or location.startswith(LOGIN + "?next="), location
    return client.get(location, **extra)
