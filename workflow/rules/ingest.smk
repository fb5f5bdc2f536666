# Demo data and raw microscopy -> OME-Zarr.


if DEMO:

    rule demo:
        output:
            [f"{EXPERIMENT_DIR}/{name}.ome.tif" for name in config["demo"]["positions"]],
        params:
            folder=lambda wildcards, output: Path(output[0]).parent,
            options=demo_flags(config["demo"]),
        log:
            f"{OUT}/logs/demo.log",
        conda:
            "../../envs/io.yaml"
        shell:
            "spheroseg demo --output {params.folder:q} {params.options:q} 2> {log:q}"


rule ingest:
    input:
        position_files,
    output:
        directory(f"{OUT}/{{position}}/image.ome.zarr"),
    params:
        experiment=str(EXPERIMENT_DIR),
        options=optional_flags(
            pattern=config["ingest"]["pattern"],
            pixel_size_um=config["ingest"]["pixel_size_um"],
            time_interval_s=config["ingest"]["time_interval_s"],
            z_step_um=config["ingest"]["z_step_um"],
            workers=config["ingest"]["workers"],
        )
        + switches(no_pyramid=not config["ingest"]["pyramid"]),
    log:
        f"{OUT}/{{position}}/logs/ingest.log",
    benchmark:
        f"{OUT}/{{position}}/benchmarks/ingest.tsv"
    conda:
        "../../envs/io.yaml"
    shell:
        "spheroseg ingest --experiment {params.experiment:q} --position {wildcards.position:q}"
        " --output {output:q} {params.options:q} 2> {log:q}"
