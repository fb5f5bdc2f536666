# Probabilities -> tracked label images.


rule segment:
    input:
        f"{OUT}/{{position}}/probabilities.ome.zarr",
    output:
        directory(f"{OUT}/{{position}}/labels.ome.zarr"),
    params:
        options=segment_options,  # min_area_px where the position has no pixel size
    log:
        f"{OUT}/{{position}}/logs/segment.log",
    benchmark:
        f"{OUT}/{{position}}/benchmarks/segment.tsv"
    threads: frame_threads  # 2 worker processes for large positions, else 1
    conda:
        "../../envs/io.yaml"
    shell:
        "spheroseg segment --probabilities {input:q} --output {output:q} {params.options:q}"
        " --threads {threads} 2> {log:q}"
