"""Stage 4, verify: built clusters in, findings out.

``schema`` and ``catalogue`` validate every object strictly against pinned upstream schemas, ``evaluate`` runs
the Kyverno ValidatingPolicies each cluster receives offline (CEL), ``secretscan`` looks for leaked secrets,
``golden`` compares (or updates) the committed golden files and ``diff`` shows what an inventory edit changes
per cluster and resource.
"""
