# Tiled U-Net inference: tile plan -> TorchScript predict (GPU rule) -> blended probabilities.
# predict.rescale is decided by the tile rule: the plan is made for the model's pixel size.
# The model is ancient(): only a change of its content (SHA-256 in params) reruns inference.


rule tile:
    input:
        image=f"{OUT}/{{position}}/image.ome.zarr",
        model=ancient(model_path()),
    output:
        f"{OUT}/{{position}}/tiles.json",
    log:
        f"{OUT}/{{position}}/logs/tile.log",
    benchmark:
        f"{OUT}/{{position}}/benchmarks/tile.tsv"
    conda:
        "../../envs/torch.yaml"
    params:
        model_sha256=model_digest,
        options=optional_flags(
            tile_size=config["tiling"]["tile_size"],
            overlap=config["tiling"]["overlap"],
        ),
        rescale=config["predict"]["rescale"] or "off",  # YAML reads a bare off as false
    shell:
        "spheroseg tile --image {input.image:q} --model {input.model:q}"
        " {params.options:q} --rescale {params.rescale} --output {output:q} 2> {log:q}"


rule predict:
    input:
        image=f"{OUT}/{{position}}/image.ome.zarr",
        plan=f"{OUT}/{{position}}/tiles.json",
        model=ancient(model_path()),
    output:
        temp(directory(f"{OUT}/{{position}}/tiles.zarr")),
    log:
        f"{OUT}/{{position}}/logs/predict.log",
    benchmark:
        f"{OUT}/{{position}}/benchmarks/predict.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        model_sha256=model_digest,
        channel=channel_of,
        device=config["predict"]["device"],
        precision=config["predict"]["precision"],
        options=optional_flags(batch_size=config["predict"]["batch_size"])
        + switches(no_channels_last=not config["predict"]["channels_last"]),
    shell:
        "spheroseg predict --image {input.image:q} --plan {input.plan:q} --model {input.model:q}"
        " --channel {params.channel} --device {params.device} --precision {params.precision}"
        " {params.options:q} --output {output:q} 2> {log:q}"


rule stitch:
    input:
        plan=f"{OUT}/{{position}}/tiles.json",
        tiles=f"{OUT}/{{position}}/tiles.zarr",
    output:
        directory(f"{OUT}/{{position}}/probabilities.ome.zarr"),
    log:
        f"{OUT}/{{position}}/logs/stitch.log",
    benchmark:
        f"{OUT}/{{position}}/benchmarks/stitch.tsv"
    conda:
        "../../envs/torch.yaml"
    params:
        window=config["stitch"]["window"],
        dtype=config["stitch"]["dtype"],
    shell:
        "spheroseg stitch --plan {input.plan:q} --tiles {input.tiles:q} --window {params.window}"
        " --dtype {params.dtype} --output {output:q} 2> {log:q}"
