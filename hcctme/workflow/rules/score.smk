# Per-sample rules: each sample is split out of the input and scored on its own (cluster fan-out); the scored
# files hold the results only (obs, scores), and the cohort rules read the matrices from the input itself.


rule split_sample:
    input:
        config["input"],
    output:
        temp(f"{OUT}/samples/{{sample}}.h5ad"),
    params:
        config=_steps.rule_config(config, "split_sample"),
    script:
        "../scripts/split_sample.py"


rule score_sample:
    input:
        f"{OUT}/samples/{{sample}}.h5ad",
    output:
        f"{OUT}/scored/{{sample}}.h5ad",
    params:
        config=_steps.rule_config(config, "score_sample"),
    script:
        "../scripts/score_sample.py"


rule merge_scores:
    input:
        expand(f"{OUT}/scored/{{sample}}.h5ad", sample=SAMPLES),
    output:
        f"{OUT}/scored.h5ad",
    script:
        "../scripts/merge_scores.py"
