# Cohort-level rules: states, pseudobulk, comparisons, crosstalk, spatial barrier. Each reads the matrices from
# the input (backed when large: in chunks) and the earlier results from states.h5ad (results only).


rule states:
    input:
        f"{OUT}/scored.h5ad",
        data=config["input"],
    output:
        f"{OUT}/states.h5ad",
        skipped=f"{OUT}/skipped/states.json",
    params:
        config=_steps.rule_config(config, "states"),
    script:
        "../scripts/states.py"


rule pseudobulk:
    input:
        f"{OUT}/states.h5ad",
        data=config["input"],
    output:
        f"{OUT}/pseudobulk.h5ad",
    params:
        config=_steps.rule_config(config, "pseudobulk"),
    script:
        "../scripts/pseudobulk.py"


rule compare:
    input:
        f"{OUT}/states.h5ad",
        data=config["input"],
    output:
        f"{OUT}/compare_{{features}}.tsv",
        skipped=f"{OUT}/skipped/compare_{{features}}.json",
        params=f"{OUT}/params/compare_{{features}}.h5ad",
    wildcard_constraints:
        features="composition|scores|genes",
    params:
        config=lambda wildcards: _steps.rule_config(config, f"compare_{wildcards.features}"),
    script:
        "../scripts/compare.py"


rule crosstalk:
    input:
        f"{OUT}/states.h5ad",
        data=config["input"],
    output:
        pooled=f"{OUT}/crosstalk.tsv",
        diff=f"{OUT}/crosstalk_diff.tsv",
        skipped=f"{OUT}/skipped/crosstalk.json",
        params=f"{OUT}/params/crosstalk.h5ad",
    params:
        config=_steps.rule_config(config, "crosstalk"),
    script:
        "../scripts/crosstalk.py"


rule tib:
    input:
        f"{OUT}/states.h5ad",
        data=config["input"],
    output:
        f"{OUT}/tib.tsv",
        skipped=f"{OUT}/skipped/tib.json",
        params=f"{OUT}/params/tib.h5ad",
    params:
        config=_steps.rule_config(config, "tib"),
    script:
        "../scripts/tib.py"


rule ta_response:
    input:
        f"{OUT}/states.h5ad",
        data=config["input"],
    output:
        per_sample=f"{OUT}/ta_response_per_sample.tsv",
        compare=f"{OUT}/ta_response_compare.tsv",
        skipped=f"{OUT}/skipped/ta_response.json",
        params=f"{OUT}/params/ta_response.h5ad",
    params:
        config=_steps.rule_config(config, "ta_response"),
    script:
        "../scripts/ta_response.py"
