# What users look at: QC flags, metric plots, contour overlays and the pages of
# `snakemake --report report.html`. Add REPORT_OUTPUTS to `rule all`.
# Params holding names or config text are functions: Snakemake expands "{...}" in plain
# string params as wildcards.
import json

# Report files for `rule all`: per position, per experiment, and the sample-sheet merge.
REPORT_OUTPUTS = [
    *(
        f"{OUT}/{position}/report/{name}"
        for position in POSITIONS
        for name in ("metrics_over_time.png", "montage.png", "overlay.html")
    ),
    f"{OUT}/qc.csv",
    f"{OUT}/report/comparison.png",
    f"{OUT}/report/run_parameters.html",
    *([f"{OUT}/metrics_samples.csv"] if config["samples"] else []),
]


rule report_position_qc:
    input:
        metrics=f"{OUT}/{{position}}/metrics.csv",
        probabilities=f"{OUT}/{{position}}/probabilities.ome.zarr",
        image=f"{OUT}/{{position}}/image.ome.zarr",
        segmentation=f"{OUT}/{{position}}/segment.json",  # the labels in the image are complete
    output:
        f"{OUT}/{{position}}/qc.csv",
    log:
        f"{OUT}/{{position}}/logs/report_qc.log",
    conda:
        "../../envs/io.yaml"
    params:
        labels=lambda wildcards, input: Path(input.image) / "labels" / "segmentation",
        experiment=lambda wildcards: EXPERIMENT,
        position=position_name,
        area_jump_fraction=config["report"]["area_jump_fraction"],
        uncertain_fraction=config["report"]["uncertain_fraction"],
    shell:
        "spheroseg report qc --metrics {input.metrics:q} --probabilities {input.probabilities:q}"
        " --image {input.image:q} --labels {params.labels:q} --experiment {params.experiment:q}"
        " --position {params.position:q}"
        " --area-jump-fraction {params.area_jump_fraction}"
        " --uncertain-fraction {params.uncertain_fraction} --output {output:q} 2> {log:q}"


rule report_qc:
    input:
        [f"{OUT}/{position}/qc.csv" for position in POSITIONS],
    output:
        table=report(
            f"{OUT}/qc.csv",
            caption="../report/qc_table.rst",
            category="Quality control",
        ),
        page=report(
            f"{OUT}/report/qc.html",
            caption="../report/qc_page.rst",
            category="Quality control",
        ),
    log:
        f"{OUT}/logs/report_qc.log",
    conda:
        "../../envs/io.yaml"
    params:
        title=lambda wildcards: f"{EXPERIMENT}: quality-control flags",
    shell:
        "spheroseg report merge-qc --output {output.table:q} --html {output.page:q}"
        " --title {params.title:q} {input:q} 2> {log:q}"


rule report_position:
    input:
        metrics=f"{OUT}/{{position}}/metrics.csv",
        qc=f"{OUT}/{{position}}/qc.csv",
        image=f"{OUT}/{{position}}/image.ome.zarr",
        contours=f"{OUT}/{{position}}/contours.geojson",
    output:
        plot=report(
            f"{OUT}/{{position}}/report/metrics_over_time.png",
            caption="../report/metrics_over_time.rst",
            category="Positions",
            subcategory="{position}",
            labels={"position": "{position}", "figure": "metrics over time"},
        ),
        plot_svg=f"{OUT}/{{position}}/report/metrics_over_time.svg",
        montage=report(
            f"{OUT}/{{position}}/report/montage.png",
            caption="../report/montage.rst",
            category="Positions",
            subcategory="{position}",
            labels={"position": "{position}", "figure": "contour montage"},
        ),
        gif=f"{OUT}/{{position}}/report/overlay.gif",
        gif_page=report(
            f"{OUT}/{{position}}/report/overlay.html",
            caption="../report/overlay.rst",
            category="Positions",
            subcategory="{position}",
            labels={"position": "{position}", "figure": "contour animation"},
        ),
    log:
        f"{OUT}/{{position}}/logs/report_position.log",
    conda:
        "../../envs/io.yaml"
    params:
        title=lambda wildcards: f"{EXPERIMENT} / {position_name(wildcards)}",
        folder=lambda wildcards, output: Path(output.plot).parent,
        channel=channel_of,
        montage_frames=config["report"]["montage_frames"],
        gif_frames=config["report"]["gif_frames"],
        gif_size=config["report"]["gif_size"],
        frame_ms=config["report"]["gif_frame_ms"],
    shell:
        "spheroseg report position --metrics {input.metrics:q} --qc {input.qc:q}"
        " --image {input.image:q} --contours {input.contours:q} --output-dir {params.folder:q}"
        " --title {params.title:q} --channel {params.channel}"
        " --montage-frames {params.montage_frames} --gif-frames {params.gif_frames}"
        " --gif-size {params.gif_size} --frame-ms {params.frame_ms} 2> {log:q}"


rule report_experiment:
    input:
        metrics=f"{OUT}/metrics.csv",
        qc=f"{OUT}/qc.csv",
        samples=config["samples"] or [],
    output:
        png=report(
            f"{OUT}/report/comparison.png",
            caption="../report/comparison.rst",
            category="Experiment",
        ),
        svg=f"{OUT}/report/comparison.svg",
    log:
        f"{OUT}/logs/report_experiment.log",
    conda:
        "../../envs/io.yaml"
    params:
        title=lambda wildcards: EXPERIMENT,
        options=lambda wildcards: optional_flags(samples=config["samples"]),
    shell:
        "spheroseg report experiment --metrics {input.metrics:q} --qc {input.qc:q} --title {params.title:q}"
        " {params.options:q} --output {output.png:q} {output.svg:q} 2> {log:q}"


rule report_samples:
    input:
        metrics=f"{OUT}/metrics.csv",
        samples=config["samples"] or [],
    output:
        f"{OUT}/metrics_samples.csv",
    log:
        f"{OUT}/logs/report_samples.log",
    conda:
        "../../envs/io.yaml"
    shell:
        "spheroseg report samples --metrics {input.metrics:q} --samples {input.samples:q}"
        " --output {output:q} 2> {log:q}"


rule report_parameters:
    input:
        card=str(Path(model_path()).with_suffix(".json")),
    output:
        report(
            f"{OUT}/report/run_parameters.html",
            caption="../report/run_parameters.rst",
            category="Run",
        ),
    log:
        f"{OUT}/logs/report_parameters.log",
    conda:
        "../../envs/io.yaml"
    params:
        config=lambda wildcards: json.dumps(config, sort_keys=True, default=str),
        model=lambda wildcards: model_path(),
        title=lambda wildcards: f"{EXPERIMENT}: run parameters and model card",
    shell:
        "spheroseg report parameters --config-json {params.config:q} --model {params.model:q}"
        " --title {params.title:q} --output {output:q} 2> {log:q}"
