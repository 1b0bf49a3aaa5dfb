"""Stage 2, render: a resolved fleet in, the file plan {path: text} out, then written to out/.

``pipeline.plan`` asks each part for its files: ``planner`` (the Flux tree from Jinja templates and component
data), ``policies`` (Kyverno, tenancy, CODEOWNERS), ``issuers`` and ``externalsecrets`` (certificates and secret
plumbing), ``crossplane`` (the infrastructure repo) and ``overview`` (FLEET.md). Planning does no I/O besides
reading templates and charts; ``writer`` writes only changed files, atomically, and refuses hand-edited ones.
"""
