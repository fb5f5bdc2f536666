# Probabilities -> tracked label images, nested under their image (image.ome.zarr/labels/
# segmentation), so that viewers open a position's image with its labels. Snakemake refuses
# an output inside another rule's directory output (ChildIOException), so the declared output
# is segment.json, written by spheroseg only after the nested labels are complete and listed.
# The image is an input: a new image (ingest rerun) has no labels and reruns segment.


rule segment:
    input:
        probabilities=f"{OUT}/{{position}}/probabilities.ome.zarr",
        image=f"{OUT}/{{position}}/image.ome.zarr",
    output:
        f"{OUT}/{{position}}/segment.json",
    log:
        f"{OUT}/{{position}}/logs/segment.log",
    benchmark:
        f"{OUT}/{{position}}/benchmarks/segment.tsv"
    conda:
        "../../envs/io.yaml"
    threads: frame_threads  # 2 worker processes for large positions, else 1
    params:
        options=segment_options,  # min_area_px where the position has no pixel size
    shell:
        "spheroseg segment --probabilities {input.probabilities:q} --image {input.image:q}"
        " --record {output:q} {params.options:q} --threads {threads} 2> {log:q}"
