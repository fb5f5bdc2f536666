# A bioimage.io package named by `model:` becomes a TorchScript model with its card, so that
# tile and predict always see spheroseg's model contract. The package is checked when the
# DAG is built (imported_model_path in common.smk); this job copies the weights and checks
# that spheroseg reproduces the package's own test output.


rule import_bioimageio:
    input:
        package=model_package() or [],
    output:
        model=f"{MODELS_DIR}/bioimageio/{{name}}.pt",
        card=f"{MODELS_DIR}/bioimageio/{{name}}.json",
    log:
        f"{MODELS_DIR}/bioimageio/{{name}}.log",
    conda:
        "../../envs/torch.yaml"
    shell:
        "spheroseg import-bioimageio {input.package:q} {output.model:q} > /dev/null 2> {log:q}"
