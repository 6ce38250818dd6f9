"""Post/redirect/get in the console's HTTP tests (apps.console.prg): a refused form redirects (303) to its page."""


def refused(client, url: str, data: dict, *, to: str):
    """POST a form the console refuses: 303 to `to`, whose GET (200) shows the refusal once. Returns that page."""
    response = client.post(url, data)
    assert (response.status_code, response.get("Location")) == (303, to), response.status_code
    page = client.get(to)
    assert page.status_code == 200
    return page
