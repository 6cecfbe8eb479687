"""Feature flags: definitions (parse, validate: definition.py), a pure evaluator (evaluator.py), the user a flag
request names (request.py) and exposure recording (exposure.py). Import from the module that defines a name."""
