"""The deployment lifecycle: create, enrol, get, list, close, expire; audited and access-controlled."""
