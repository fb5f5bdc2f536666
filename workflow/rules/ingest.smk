# Demo data and raw microscopy -> OME-Zarr.


if DEMO:

    rule demo:
        output:
            [f"{EXPERIMENT_DIR}/{name}.ome.tif" for name in config["demo"]["positions"]],
        log:
            f"{OUT}/logs/demo.log",
        conda:
            "../../envs/io.yaml"
        params:
            folder=lambda wildcards, output: Path(output[0]).parent,
            options=demo_flags(config["demo"]),
        shell:
            "spheroseg demo --output {params.folder:q} {params.options:q} 2> {log:q}"


rule ingest:
    input:
        position_files,
    output:
        directory(f"{OUT}/{{position}}/image.ome.zarr"),
    log:
        f"{OUT}/{{position}}/logs/ingest.log",
    benchmark:
        f"{OUT}/{{position}}/benchmarks/ingest.tsv"
    conda:
        "../../envs/io.yaml"
    # Params are functions: Snakemake would expand "{...}" in plain strings (a pattern, a
    # folder name with braces) as wildcards.
    params:
        experiment=lambda wildcards: str(EXPERIMENT_DIR),
        position=position_name,
        untracked_sources=untracked_sources,
        options=lambda wildcards: ingest_options(),
    shell:
        "spheroseg ingest --experiment {params.experiment:q} --position {params.position:q}"
        " --output {output:q} {params.options:q} 2> {log:q}"
