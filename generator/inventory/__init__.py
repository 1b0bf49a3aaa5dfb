"""Stage 1, the inventory: files in, a validated and resolved fleet out.

``loader`` reads inventory/ and overlays/ (through ``generator.guard``) keeping file:line:col for every value,
validates each entry with the pydantic ``models``, then runs the cross-entry checks in ``checks`` (names, CIDRs,
compatibility, the Crossplane network and reachability model). ``resolve`` layers built-in defaults, the
inventory's ``defaults``, ``overlays/<env>.yaml`` and each cluster into a ``ResolvedFleet`` with provenance.
``schema_export`` is the editors' JSON Schema of the same models. Nothing here writes a file.
"""
