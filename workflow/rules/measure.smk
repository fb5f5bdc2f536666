# Labels + probabilities -> contours and metrics per timepoint, per position and per experiment.
# measure traces contours at the threshold segment recorded with the labels (per frame, so
# Otsu thresholds are honoured too); no --threshold here. The labels live in
# image.ome.zarr/labels/segmentation; segment.json says they are complete.


rule measure:
    input:
        segmentation=f"{OUT}/{{position}}/segment.json",
        probabilities=f"{OUT}/{{position}}/probabilities.ome.zarr",
        image=f"{OUT}/{{position}}/image.ome.zarr",
    output:
        contours=f"{OUT}/{{position}}/contours.geojson",
        timepoints=directory(f"{OUT}/{{position}}/metrics"),
        table=f"{OUT}/{{position}}/metrics.csv",
    log:
        f"{OUT}/{{position}}/logs/measure.log",
    benchmark:
        f"{OUT}/{{position}}/benchmarks/measure.tsv"
    conda:
        "../../envs/io.yaml"
    threads: frame_threads  # 2 worker processes for large positions, else 1
    params:
        experiment=lambda wildcards: EXPERIMENT,
        position=position_name,
        channel=channel_of,
        smoothing=config["measure"]["smoothing"],
        folder=lambda wildcards, output: Path(output.table).parent,
        labels=lambda wildcards, input: Path(input.image) / "labels" / "segmentation",
    shell:
        "spheroseg measure --labels {params.labels:q} --probabilities {input.probabilities:q}"
        " --image {input.image:q} --experiment {params.experiment:q} --position {params.position:q}"
        " --channel {params.channel} --smoothing {params.smoothing:q} --output-dir {params.folder:q}"
        " --threads {threads} 2> {log:q}"


rule aggregate:
    input:
        [f"{OUT}/{position}/metrics.csv" for position in POSITIONS],
    output:
        f"{OUT}/metrics.csv",
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        "../../envs/io.yaml"
    shell:
        "spheroseg aggregate --output {output:q} {input:q} 2> {log:q}"
