# Retrain the U-Net on an annotation folder; predict then uses the new model.
# The model file is named by a digest of the annotation set and the training settings: a
# changed set or setting trains a new model beside the old one (both write-protected); an
# unchanged set retrains nothing.


rule train:
    input:
        annotation_files(),
    output:
        model=protected(f"{MODELS_DIR}/{MODEL_NAME}.{{digest}}.pt"),
        card=protected(f"{MODELS_DIR}/{MODEL_NAME}.{{digest}}.json"),
        training_log=f"{MODELS_DIR}/{MODEL_NAME}.{{digest}}.training_log.csv",
        learning_curve=report(
            f"{MODELS_DIR}/{MODEL_NAME}.{{digest}}.learning_curve.png",
            category="Training",
        ),
    log:
        f"{MODELS_DIR}/{MODEL_NAME}.{{digest}}.log",
    benchmark:
        f"{MODELS_DIR}/{MODEL_NAME}.{{digest}}.benchmark.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        annotations=config["training"]["annotations"],
        options=train_flags(training_settings()),
    shell:
        "spheroseg train --annotations {params.annotations:q} --output {output.model:q}"
        " {params.options:q} 2> {log:q}"
