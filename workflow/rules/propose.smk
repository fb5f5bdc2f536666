# Human in the loop: `snakemake propose` ranks every frame by how much the model needs help and
# writes the neediest as image + proposed-mask pairs into training.annotations (never over an
# existing mask). An explicit target only: a plain run never proposes by itself.


def proposal_inputs(wildcards):
    """What propose reads of every position; refuses a missing annotation folder key."""
    if config["training"]["annotations"] is None:
        raise WorkflowError("training.annotations must name the folder to write proposed frames into, "
                            "got null (config key 'training.annotations')")
    return [f"{OUT}/{position}/{name}" for position in POSITIONS
            for name in ("image.ome.zarr", "probabilities.ome.zarr", "segment.json", "qc.csv")]


rule propose:
    input:
        proposal_inputs,
    output:
        f"{OUT}/proposals.json",
    params:
        folders=[f"{OUT}/{position}" for position in POSITIONS],
        annotations=lambda wildcards: config["training"]["annotations"],
        n=config["propose"]["n"],
        channel=config["ingest"]["channel"],
        model=lambda wildcards: model_path(),
        options=lambda wildcards: optional_flags(samples=config["samples"]),
    log:
        f"{OUT}/logs/propose.log",
    conda:
        "../../envs/io.yaml"
    shell:
        "spheroseg propose {params.folders:q} --annotations {params.annotations:q} --n {params.n}"
        " --channel {params.channel} --model {params.model:q} {params.options:q} --output {output:q}"
        " 2> {log:q}"
