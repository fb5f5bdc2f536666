# Human in the loop: `snakemake propose` ranks every frame by how much the model needs help and
# writes the neediest as image + proposed-mask pairs into training.annotations (never over an
# existing mask). An explicit target only: a plain run never proposes by itself.


rule propose:
    input:
        proposal_inputs,
    output:
        f"{OUT}/proposals.json",
    log:
        f"{OUT}/logs/propose.log",
    conda:
        "../../envs/io.yaml"
    params:
        folders=[f"{OUT}/{position}" for position in POSITIONS],
        annotations=lambda wildcards: config["training"]["annotations"],
        n=config["propose"]["n"],
        channel=lambda wildcards: proposal_channels(),
        model=lambda wildcards: model_path(),
        options=lambda wildcards: optional_flags(samples=config["samples"]),
    shell:
        "spheroseg propose {params.folders:q} --annotations {params.annotations:q} --n {params.n}"
        " --channel {params.channel} --model {params.model:q} {params.options:q} --output {output:q}"
        " 2> {log:q}"
