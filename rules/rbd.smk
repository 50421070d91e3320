# Random bases descent (Gressmann et al.): compute rules, then plot rules.
# No target of this paper is built yet; its targets are registered as planned in
# src/weightspace/pipeline/targets.yaml.
