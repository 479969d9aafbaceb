# Resistance profile from every evidence table, then the HTML report.


rule profile:
    input:
        states=f"{OUT}/states.h5ad",
        data=config["input"],
        crosstalk=f"{OUT}/crosstalk.tsv",
        crosstalk_diff=f"{OUT}/crosstalk_diff.tsv",
        tib=f"{OUT}/tib.tsv",
        ta_per_sample=f"{OUT}/ta_response_per_sample.tsv",
        ta_compare=f"{OUT}/ta_response_compare.tsv",
        compare=expand(f"{OUT}/compare_{{features}}.tsv", features=_steps.compare_features(config)),
        skipped=[f"{OUT}/skipped/{step}.json" for step in ("states", "crosstalk", "tib", "ta_response")]
        + expand(f"{OUT}/skipped/compare_{{features}}.json", features=_steps.compare_features(config)),
        params=[f"{OUT}/params/{step}.h5ad" for step in ("crosstalk", "tib", "ta_response")]
        + expand(f"{OUT}/params/compare_{{features}}.h5ad", features=_steps.compare_features(config)),
    output:
        h5ad=f"{OUT}/hcctme.h5ad",
        table=f"{OUT}/resistance_profile.tsv",
        summary=f"{OUT}/resistance_profile_summary.tsv",
        evidence=f"{OUT}/resistance_profile_evidence.tsv",
    params:
        config=_steps.rule_config(config, "profile"),
    script:
        "../scripts/profile.py"


rule report:
    input:
        f"{OUT}/hcctme.h5ad",
    output:
        f"{OUT}/report.html",
    script:
        "../scripts/report.py"
