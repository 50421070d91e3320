# One target rule per figure/table and one aggregate per paper, generated from the registry.

# What `all` builds: every built target and the prepared quick data.
ALL_OUTPUTS = [DATA_MANIFEST] + [o for t in REGISTRY.built for o in t.outputs(RUN)]


def _planned(name):
    def fail(wildcards):
        raise WorkflowError(
            f"target {name!r} is planned but not built yet: see README.md (target table) "
            "for the targets that are built"
        )

    return fail


def _nothing_built(paper):
    def fail(wildcards):
        planned = ", ".join(t.name for t in REGISTRY.of_paper(paper))
        raise WorkflowError(
            f"no target of paper {paper!r} is built yet (planned: {planned})"
        )

    return fail


for _target in REGISTRY.targets:

    rule:
        name:
            _target.name
        input:
            _target.outputs(RUN) if _target.built else _planned(_target.name),
        localrule: True


for _paper in REGISTRY.papers:

    rule:
        name:
            _paper
        input:
            (
                [
                    o
                    for t in REGISTRY.of_paper(_paper, built_only=True)
                    for o in t.outputs(RUN)
                ]
                or _nothing_built(_paper)
            ),
        localrule: True
