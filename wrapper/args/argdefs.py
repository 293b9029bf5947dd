"""The trf's arguments: one table that drives parsing, validation, `--help` and the JobSpec.

Names follow the trf convention (camelCase, `input…File` / `output…File`) that JEDI task templates use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# Kinds of value an argument takes; conversion lives in wrapper.args.grammar.
STR, INT, FLOAT, BOOL, LIST, FLOATLIST = "str", "int", "float", "bool", "list", "floatlist"


@dataclass(frozen=True)
class ArgDef:
    name: str                 # as written on the command line, without dashes
    field: str                # JobSpec field
    kind: str
    default: object
    help: str
    group: str
    choices: Optional[tuple] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    metavar: str = ""
    output: bool = False      # an output LFN written to the job directory


MODES = ("train", "infer", "evaluate")
MODEL_CONFIGS = ("tiny", "small", "paper")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")

ARGS: tuple[ArgDef, ...] = (
    # what to do
    ArgDef("mode", "mode", STR, None, "what the job does: train a model, infer (write predictions), "
           "or evaluate a model against labelled events", "job", choices=MODES),
    ArgDef("inputEventsFile", "input_events", LIST, (), "event files (HDF5): LFNs staged by the pilot, "
           "local paths, s3://bucket/key (globs allowed), https:// URLs; comma list, several words or "
           "JEDI compact form prefix[001,002]suffix; append #ad:<adler32> to verify a checksum",
           "job", metavar="FILE[,FILE...]"),
    ArgDef("modelFile", "model_file", STR, None, "trained model (.keras) for infer/evaluate, or the "
           "starting point of a training; any source inputEventsFile accepts", "job", metavar="URI"),
    ArgDef("modelConfig", "model_config", STR, None, "network size: tiny (tests), small (CPU), "
           "paper (the 9.4 M parameter FC-DenseNet); default: the network saved in --modelFile, "
           "else small; one that contradicts --modelFile is an error", "job", choices=MODEL_CONFIGS),
    ArgDef("maxEvents", "max_events", INT, -1, "process at most this many events (-1: all)", "job",
           minimum=-1),
    ArgDef("skipEvents", "skip_events", INT, 0, "skip this many events at the start of the inputs",
           "job", minimum=0),
    ArgDef("randomSeed", "random_seed", INT, 12345, "seed for shuffling, splits and initialisation",
           "job", minimum=0, maximum=2**31 - 1),
    # outputs
    ArgDef("outputPredFile", "output_pred", STR, None, "predictions (HDF5 /scores or /classes) "
           "written as this LFN in the job directory", "outputs", metavar="LFN", output=True),
    ArgDef("outputModelFile", "output_model", STR, None, "trained model (.keras) written as this LFN",
           "outputs", metavar="LFN", output=True),
    ArgDef("outputMetricsFile", "output_metrics", STR, None, "metrics (JSON: IoU, efficiency, purity, "
           "confusion matrix, training history) written as this LFN", "outputs", metavar="LFN",
           output=True),
    ArgDef("outputPlotFile", "output_plot", STR, None, "a PNG: the training curve (train) or an event "
           "display (infer/evaluate) written as this LFN", "outputs", metavar="LFN", output=True),
    ArgDef("predictionFormat", "prediction_format", STR, "scores", "scores: float16 class "
           "probabilities per pixel; classes: uint8 class per pixel (12x smaller)", "outputs",
           choices=("scores", "classes")),
    ArgDef("outputPrefix", "output_prefix", STR, None, "also upload outputs (and checkpoints) under "
           "this s3://bucket/prefix/ or https:// URL after writing them", "outputs", metavar="URI"),
    # training
    ArgDef("epochs", "epochs", INT, 5, "training epochs", "training", minimum=1, maximum=100000),
    ArgDef("batchSize", "batch_size", INT, None, "events per batch (default: the build's)",
           "training", minimum=1, maximum=4096),
    ArgDef("learningRate", "learning_rate", FLOAT, 1e-3, "initial learning rate (reduced on plateau)",
           "training", minimum=1e-9, maximum=10.0),
    ArgDef("validationSplit", "validation_split", FLOAT, 0.1, "fraction of training events held out "
           "for validation", "training", minimum=0.0, maximum=0.9),
    ArgDef("loss", "loss", STR, "weighted", "cce: cross-entropy; weighted: class-weighted "
           "cross-entropy (median-frequency weights from the data unless --classWeights); focal; "
           "dice: cross-entropy + soft Dice on beam and cosmic; lovasz: cross-entropy + Lovász-softmax "
           "(an IoU surrogate) on beam and cosmic",
           "training", choices=("cce", "weighted", "focal", "dice", "lovasz")),
    ArgDef("cropSize", "crop_size", INT, 0, "train on one crop of this many pixels a side per event, "
           "--beamFraction of them centred on a beam pixel (0: whole events; the reference model: "
           "128); needs a network with position channels (tiny, small) and one device",
           "training", minimum=0, maximum=320),
    ArgDef("beamFraction", "beam_fraction", FLOAT, 0.5, "with --cropSize: the share of crops "
           "centred on a beam pixel", "training", minimum=0.0, maximum=1.0),
    ArgDef("lrSchedule", "lr_schedule", STR, "plateau", "plateau: reduce the learning rate on a "
           "validation plateau; cosine: linear warm-up (--warmupSteps), then cosine decay",
           "training", choices=("plateau", "cosine")),
    ArgDef("warmupSteps", "warmup_steps", INT, 0, "with --lrSchedule=cosine: steps of linear "
           "warm-up", "training", minimum=0),
    ArgDef("classWeights", "class_weights", FLOATLIST, None, "three weights: background,beam,cosmic",
           "training", minimum=0.0, metavar="W,W,W"),
    ArgDef("earlyStopping", "early_stopping", INT, 0, "stop after this many epochs without "
           "validation improvement (0: off)", "training", minimum=0),
    ArgDef("checkpointPrefix", "checkpoint_prefix", STR, None, "where checkpoints live, keyed by "
           "task (e.g. s3://bucket/task-{taskid}/, {taskid} being PanDA_TaskID): a retried job resumes "
           "from the latest complete one; "
           "default: checkpoints/ in the job directory", "training", metavar="URI"),
    ArgDef("checkpointInterval", "checkpoint_interval", FLOAT, 300.0, "seconds between periodic "
           "checkpoints", "training", minimum=1.0),
    ArgDef("resume", "resume", BOOL, True, "resume from the latest complete checkpoint if one exists",
           "training"),
    # platform and builds
    ArgDef("buildManifest", "build_manifest", STR, None, "build manifest (JSON) listing the model "
           "builds per platform; default: builds derived from --modelFile", "platform", metavar="URI"),
    ArgDef("build", "build", STR, None, "use this build of the manifest, whatever the platform",
           "platform", metavar="NAME"),
    ArgDef("device", "device", STR, "auto", "auto: a usable GPU if there is one, else the CPU",
           "platform", choices=("auto", "gpu", "cpu")),
    ArgDef("requireGPU", "require_gpu", BOOL, False, "fail (exit 69) rather than run on the CPU",
           "platform"),
    ArgDef("gpus", "gpus", INT, None, "use at most this many GPUs (default: all usable)", "platform",
           minimum=0, maximum=64),
    ArgDef("precision", "precision", STR, "auto", "numeric policy; auto: the build's", "platform",
           choices=PRECISIONS),
    ArgDef("multiWorker", "multi_worker", STR, "auto", "auto: when srun/jsrun/mpirun started several "
           "copies of the trf (or TF_CONFIG is set), train together with MultiWorkerMirroredStrategy, "
           "rank 0 writing outputs and reports; off: each copy is an independent job", "platform",
           choices=("auto", "off")),
    ArgDef("workerPort", "worker_port", INT, 12345, "first TCP port of the workers' collectives on "
           "each node (local rank N listens on port+N)", "platform", minimum=1024, maximum=65535),
    ArgDef("workerTimeout", "worker_timeout", FLOAT, 600.0, "seconds a worker waits for the others "
           "(start-up, each collective) before failing instead of hanging", "platform", minimum=5.0),
    ArgDef("nThreads", "n_threads", INT, None, "CPU threads for the framework's intra-op and inter-op "
           "pools (default: the CPUs the batch system gave the job: affinity and cgroup CPU quota)",
           "platform", minimum=1, maximum=1024),
    ArgDef("showPlatform", "show_platform", BOOL, False, "print the detected platform and the build "
           "that would be chosen, then exit", "platform"),
    # inference as a service
    ArgDef("inferenceServer", "inference_server", STR, None, "run the network of infer/evaluate on "
           "this Triton inference server instead of in the job: grpc://HOST:PORT, or grpcs:// with "
           "TLS (CA bundle from REQUESTS_CA_BUNDLE, a bearer token from the places HTTPS inputs use)",
           "inference", metavar="URL"),
    ArgDef("inferenceModel", "inference_model", STR, None, "the model on --inferenceServer: NAME or "
           "NAME:VERSION (default version: the one the server has ready)", "inference",
           metavar="NAME[:VERSION]"),
    ArgDef("inferenceConcurrency", "inference_concurrency", INT, 4, "requests in flight to the "
           "server, which hides the round trip behind reading and writing events", "inference",
           minimum=1, maximum=64),
    ArgDef("inferenceTimeout", "inference_timeout", FLOAT, 60.0, "seconds one request may take "
           "before it counts as lost and is tried again", "inference", minimum=1.0),
    ArgDef("inferenceRetries", "inference_retries", INT, 4, "further tries of a request the server "
           "could not answer (unreachable, overloaded, timed out), with backoff", "inference",
           minimum=0, maximum=20),
    ArgDef("inferenceFallback", "inference_fallback", STR, "none", "local: when the server is gone, "
           "run the rest of the job in process with --modelFile (the report says which events ran "
           "where); none: fail", "inference", choices=("none", "local")),
    # staging
    ArgDef("s3Endpoint", "s3_endpoint", STR, None, "S3 endpoint URL (default: AWS_ENDPOINT_URL or "
           "S3_ENDPOINT_URL); credentials come from the standard AWS chain", "staging", metavar="URL"),
    ArgDef("s3PathStyle", "s3_path_style", BOOL, False, "path-style S3 addressing (most on-site "
           "stores such as Ceph RGW need it)", "staging"),
    ArgDef("accessMode", "access_mode", STR, "copy", "copy: stage inputs to the job directory; "
           "direct: read HDF5 straight from S3 with ranged reads", "staging",
           choices=("copy", "direct")),
    ArgDef("stagingThreads", "staging_threads", INT, 16, "transfers in flight (files, and parts of one file)",
           "staging", minimum=1, maximum=64),
    # control
    ArgDef("timeLimit", "time_limit", FLOAT, None, "stop with exit 67 after this many seconds of "
           "work (set it below the queue's walltime)", "control", minimum=1.0),
    ArgDef("dryRun", "dry_run", BOOL, False, "print the resolved job and plan, then exit 0 without "
           "staging or running", "control"),
    ArgDef("debug", "debug", BOOL, False, "verbose log and tracebacks for expected failures",
           "control"),
    ArgDef("argJSON", "arg_json", STR, None, "a JSON file of {argName: value}; the command line "
           "wins over it", "control", metavar="FILE"),
    ArgDef("containerImage", "container_image", STR, None, "accepted and ignored: the pilot, not the "
           "trf, runs the container (a pilot that did not strip this word must not fail the job)",
           "control", metavar="IMAGE"),
    ArgDef("help", "help", BOOL, False, "print this help and exit", "control"),
)

BY_NAME = {a.name: a for a in ARGS}

# Arguments each mode cannot do without; an alternative set is given as a tuple of names.
REQUIRED = {
    "train": ("inputEventsFile", "outputModelFile"),
    "infer": ("inputEventsFile", ("modelFile", "inferenceServer"), "outputPredFile"),
    "evaluate": ("inputEventsFile", ("modelFile", "inferenceServer"), ("outputMetricsFile", "outputPredFile")),
}
