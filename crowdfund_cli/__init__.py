"""``crowdfund``: the operator and creator command line. It talks to the gateway over HTTP, never to a database."""
