# spheroseg: shape measurements of gastruloids, spheroids and organoids over time.
#   snakemake --cores 2                       # embedded demo
#   snakemake --profile profiles/slurm --config experiment=/path/to/experiment
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# Defaults live beside this Snakefile, so the workflow also runs from another working
# directory (--directory or an experiment folder); --configfile adds overrides on top.
configfile: Path(workflow.basedir) / "config/config.yaml"


# The top page of `snakemake --report report.html`.
report: "workflow/report/workflow.rst"


# Jobs find the `spheroseg` command on PATH (see workflow/rules/common.smk).
envvars:
    "PATH",


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/modelzoo.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/propose.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
        REPORT_OUTPUTS,
