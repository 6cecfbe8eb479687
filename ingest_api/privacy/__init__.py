"""Privacy operations: erasure and export of a person's data, the audit log, client-IP handling."""
