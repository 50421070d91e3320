"""Tables and claims of the structured-layer targets, one module per target (pure
pandas; the workflow scripts read and write the files).

Every claims function returns a list of {claim, published, reproduced, holds}. The
papers' numbers are read from the PDFs and not reproduced here (spec §1), so "published"
states the qualitative expectation.
"""
