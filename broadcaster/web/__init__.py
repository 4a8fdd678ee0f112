"""The pages: the residents' site and the staff console, over the same services as the API."""
