"""The JSON API: routes and what crosses them; the work is done by the domain's services."""
